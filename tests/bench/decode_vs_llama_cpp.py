"""qlorad and llama.cpp side by side on the same model, same CPU, same threads (issue 18).

Writes (or takes) a Llama-shaped model in Hugging Face format, exports it to GGUF with
`qlorad-tool export-gguf` (F32, and Q4_0 --pure: every 2-D weight incl. the head in Q4_0),
then alternates, --reps times:
  qlorad    model_bench --prompt 512 --decode-prompt 1 --decode 128   (fp32, then --quantize nf4)
  llama.cpp llama-bench -p 512 -n 128 -t THREADS -r 1                  (F32, then Q4_0)
llama-bench is llama.cpp built from its public source outside this repository (--llama-bench);
the project never vendors it. Medians and min-max of each row, the ratio qlorad / llama.cpp, and
each row as a fraction of the floor measured in the same qlorad run (threaded read bandwidth over
the bytes each token reads; fp32 GEMM FLOP/s over 2 * parameters for prefill).

usage: python3 tests/bench/decode_vs_llama_cpp.py --llama-bench PATH [--reps 5] [--threads 2]
       [--model DIR] [--tool build/server/qlorad-tool] [--bench build/tests/bench/model_bench]
       [--reduced-heads bf16,int8]   (extra qlorad rows with that --serve-head, in the same rotation)
       [--int8-activation-heads fp32,int8,nf4]   (extra NF4 rows with --activations int8 and that head)
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZER = os.path.join(SOURCE, "tests", "fixtures", "npm", "node_modules", "@lenml", "tokenizer-llama2", "models")
SHAPE = ["--arch", "llama", "--layers", "12", "--hidden", "768", "--heads", "12", "--kv-heads", "12",
         "--intermediate", "2048", "--vocab", "32000"]


def run(args, env=None):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def qlorad_run(bench, model, quantize, threads, head="fp32", activations="fp32"):
    env = dict(os.environ, QLORAD_KERNEL_THREADS=str(threads))
    out = run([bench, "--model", model, "--prompt", "512", "--decode-prompt", "1", "--decode", "128",
               "--reps", "1", "--quantize", quantize, "--serve-head", head, "--activations", activations], env)
    number = lambda pattern: float(re.search(pattern, out).group(1))
    return {
        "pp": number(r"prefill 512 tokens: ([\d.]+) tokens/s"),
        "tg": number(r"fused path[^:]*: ([\d.]+) tokens/s"),
        "tg_libtorch": number(r"libtorch path: ([\d.]+) tokens/s"),
        "read_gbps": number(r"threaded read ([\d.]+) GB/s"),
        "gemm_gflops": number(r"fp32 GEMM 1024\^3 ([\d.]+) GFLOP/s"),
    }


def llama_run(llama_bench, gguf, threads):
    out = run([llama_bench, "-m", gguf, "-p", "512", "-n", "128", "-t", threads, "-r", "1", "-o", "json"])
    rows = json.loads(out)
    pick = lambda key: next(r["avg_ts"] for r in rows if r[key] > 0)
    return {"pp": pick("n_prompt"), "tg": pick("n_gen")}


def stats(values):
    return statistics.median(values), min(values), max(values)


def bytes_per_token(quantized, head_precision="fp32"):
    """Weight bytes one decode step reads: every linear layer and the head (embeddings: one row)."""
    linear = 12 * (4 * 768 * 768 + 3 * 768 * 2048)
    head = 32000 * 768 * {"fp32": 4, "bf16": 2, "int8": 1 + 4 / 768, "nf4": 0.5 + 4 / 64}[head_precision]
    if quantized == "nf4":  # 4-bit codes + double-quantized blocksize-64 scales (0.5165 B/param)
        return linear * 0.5165 + head
    if quantized == "q4_0":  # 18 bytes per 32 weights, head too (--pure)
        return (linear + 32000 * 768) * 18 / 32
    return linear * 4 + head


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-bench", required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", default="2")
    p.add_argument("--model")
    p.add_argument("--reduced-heads", default="", help="comma-separated --serve-head values for extra rows")
    p.add_argument("--int8-activation-heads", default="",
                   help="comma-separated --serve-head values for extra NF4 rows with --activations int8")
    p.add_argument("--tool", default=os.path.join(SOURCE, "build", "server", "qlorad-tool"))
    p.add_argument("--bench", default=os.path.join(SOURCE, "build", "tests", "bench", "model_bench"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if not model:
            model = os.path.join(tmp, "model")
            run([a.tool, "make-model", *SHAPE, "--tokenizer", TOKENIZER, "--seed", "1", "--out", model])
        ggufs = {"f32": os.path.join(tmp, "f32.gguf"), "q4_0": os.path.join(tmp, "q4_0.gguf")}
        run([a.tool, "export-gguf", "--model", model, "--out", ggufs["f32"], "--type", "f32", "--no-modelfile"])
        run([a.tool, "export-gguf", "--model", model, "--out", ggufs["q4_0"], "--type", "q4_0", "--pure",
             "--no-modelfile"])
        heads = [h for h in a.reduced_heads.split(",") if h]
        a8_heads = [h for h in a.int8_activation_heads.split(",") if h]
        rows = {k: [] for k in ["q_f32", "l_f32", "q_nf4", "l_q4_0"] + [f"q_{q}_{h}" for h in heads for q in ("f32", "nf4")]
                + [f"q_nf4_{h}_a8" for h in a8_heads]}
        for rep in range(a.reps):
            rows["q_f32"].append(qlorad_run(a.bench, model, "none", a.threads))
            rows["l_f32"].append(llama_run(a.llama_bench, ggufs["f32"], a.threads))
            for h in heads:
                rows[f"q_f32_{h}"].append(qlorad_run(a.bench, model, "none", a.threads, h))
            rows["q_nf4"].append(qlorad_run(a.bench, model, "nf4", a.threads))
            rows["l_q4_0"].append(llama_run(a.llama_bench, ggufs["q4_0"], a.threads))
            for h in heads:
                rows[f"q_nf4_{h}"].append(qlorad_run(a.bench, model, "nf4", a.threads, h))
            for h in a8_heads:
                rows[f"q_nf4_{h}_a8"].append(qlorad_run(a.bench, model, "nf4", a.threads, h, "int8"))
            print(f"rep {rep + 1}/{a.reps}: " + ", ".join(
                f"{k} pp {v[-1]['pp']:.0f} tg {v[-1]['tg']:.1f}" for k, v in rows.items()), flush=True)
    ours = [r for k, v in rows.items() if k.startswith("q_") for r in v]
    read = statistics.median(r["read_gbps"] for r in ours)
    gemm = statistics.median(r["gemm_gflops"] for r in ours)
    params = 134105856
    print(f"\nfloors (median over qlorad runs): threaded read {read:.1f} GB/s, fp32 GEMM {gemm:.1f} GFLOP/s; "
          f"{a.reps} alternating repetitions, {a.threads} threads\n")
    print("| row | qlorad median (min-max) | llama.cpp median (min-max) | ratio | qlorad / floor | llama.cpp / floor |")
    print("|---|---|---|---:|---:|---:|")

    def line(label, ours, theirs, key, floor):
        o, t = stats([r[key] for r in ours]), stats([r[key] for r in theirs])
        print(f"| {label} | {o[0]:.1f} ({o[1]:.1f}-{o[2]:.1f}) | {t[0]:.1f} ({t[1]:.1f}-{t[2]:.1f}) | "
              f"{o[0] / t[0]:.2f}x | {100 * o[0] / floor:.0f}% of {floor:.0f} | {100 * t[0] / floor:.0f}% |")

    line("prefill 512, fp32 (tokens/s)", rows["q_f32"], rows["l_f32"], "pp", gemm * 1e9 / (2 * params))
    line("decode tg128, fp32", rows["q_f32"], rows["l_f32"], "tg", read * 1e9 / bytes_per_token("f32"))
    line("decode tg128, NF4 vs Q4_0 pure", rows["q_nf4"], rows["l_q4_0"], "tg", read * 1e9 / bytes_per_token("nf4"))
    line("prefill 512, NF4 vs Q4_0 pure", rows["q_nf4"], rows["l_q4_0"], "pp", gemm * 1e9 / (2 * params))
    for h in heads:
        line(f"decode tg128, fp32 layers + {h} head vs F32", rows[f"q_f32_{h}"], rows["l_f32"], "tg",
             read * 1e9 / bytes_per_token("f32", h))
        line(f"decode tg128, NF4 layers + {h} head vs Q4_0 pure", rows[f"q_nf4_{h}"], rows["l_q4_0"], "tg",
             read * 1e9 / bytes_per_token("nf4", h))
    for h in a8_heads:
        line(f"decode tg128, NF4 layers + {h} head, int8 activations vs Q4_0 pure", rows[f"q_nf4_{h}_a8"],
             rows["l_q4_0"], "tg", read * 1e9 / bytes_per_token("nf4", h))
        line(f"prefill 512, NF4 + {h} head, int8 activations vs Q4_0 pure", rows[f"q_nf4_{h}_a8"], rows["l_q4_0"],
             "pp", gemm * 1e9 / (2 * params))
    lt = stats([r["tg_libtorch"] for r in rows["q_f32"]])
    print(f"\nqlorad fp32 decode on the libtorch path (before the fused kernels), same runs: {lt[0]:.1f} "
          f"({lt[1]:.1f}-{lt[2]:.1f}) tokens/s")
    print(f"Q4_0 floor (bytes it reads): {read * 1e9 / bytes_per_token('q4_0'):.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
