#!/usr/bin/python3
"""qlorad's LoRA training step side by side with a PyTorch-Python eager LoRA loop on the same
libtorch (Debian's python3-torch 1.13), issue 23: tokens/s and peak RSS, alternating runs,
medians and min-max over --reps repetitions, one process per run (so each peak RSS is its own).

  tests/bench/train_vs_torch_eager.py [--reps 5] [--steps 3] [--build build] [--rows +gc]

Shape (both programs): Llama, hidden 768, 12 layers, 12 heads (no GQA), intermediate 2048,
vocab 32000, untied lm_head (134M parameters), random fp32 weights; LoRA r=16, alpha 32,
dropout 0.05 on all seven projections of every layer; batch 4 x 256 random tokens, loss on every
position; AdamW lr 2e-4; 2 threads. Timed: the whole training loop of --steps steps (the first
included, in both). qlorad runs build/tests/bench/train_memory_bench --size 134M. The eager loop
is written here from the Llama architecture (RMSNorm, rotary embeddings, causal softmax attention,
SwiGLU) with torch.utils.checkpoint for the checkpointed rows. Not part of ctest (minutes)."""

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time

HIDDEN, LAYERS, HEADS, INTERMEDIATE, VOCAB = 768, 12, 12, 2048, 32000
RANK, ALPHA, DROPOUT, BATCH, SEQ = 16, 32, 0.05, 4, 256


def eager_child(steps, checkpointing):
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(1)
    torch.set_num_threads(os.cpu_count())

    class LoraLinear(torch.nn.Module):
        def __init__(self, out_features, in_features):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features),
                                             requires_grad=False)
            self.lora_A = torch.nn.Parameter(torch.empty(RANK, in_features))
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = torch.nn.Parameter(torch.zeros(out_features, RANK))
            self.dropout = torch.nn.Dropout(DROPOUT)

        def forward(self, x):
            return F.linear(x, self.weight) + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * (ALPHA / RANK)

    class RMSNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(HIDDEN), requires_grad=False)

        def forward(self, x):
            return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)

    head_dim = HIDDEN // HEADS
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(SEQ).float(), inv_freq)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    causal = torch.full((SEQ, SEQ), float("-inf")).triu(1)

    def rotate(x):
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input_norm, self.post_norm = RMSNorm(), RMSNorm()
            self.q, self.k, self.v, self.o = (LoraLinear(HIDDEN, HIDDEN) for _ in range(4))
            self.gate, self.up = LoraLinear(INTERMEDIATE, HIDDEN), LoraLinear(INTERMEDIATE, HIDDEN)
            self.down = LoraLinear(HIDDEN, INTERMEDIATE)

        def forward(self, x):
            b, t, _ = x.shape
            h = self.input_norm(x)
            q, k, v = (p(h).view(b, t, HEADS, head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
            scores = rotate(q) @ rotate(k).transpose(-1, -2) / math.sqrt(head_dim) + causal
            attn = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
            x = x + self.o(attn)
            h = self.post_norm(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN) / math.sqrt(HIDDEN), requires_grad=False)
            self.layers = torch.nn.ModuleList(Layer() for _ in range(LAYERS))
            self.norm = RMSNorm()
            self.lm_head = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN) / math.sqrt(HIDDEN), requires_grad=False)

        def forward(self, ids):
            x = F.embedding(ids, self.embed)
            for layer in self.layers:
                x = checkpoint(layer, x, use_reentrant=False) if checkpointing else layer(x)
            return F.linear(self.norm(x), self.lm_head)

    model = Model()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    batches = [torch.randint(3, VOCAB, (BATCH, SEQ)) for _ in range(steps)]
    start = time.perf_counter()
    for ids in batches:
        optimizer.zero_grad()
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.3)
        optimizer.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"tokens_per_second": steps * BATCH * SEQ / seconds, "peak_rss": peak,
                      "trainable": sum(p.numel() for p in params)}))


# What qlorad's programs set for themselves (core/util/cpu_runtime.h): idle OpenMP and OpenBLAS
# threads sleep instead of spinning. The plain eager rows run with neither set, as a user's
# PyTorch script does; the "quiet threads" rows give the eager loop the same settings.
QUIET_THREADS = {"OMP_WAIT_POLICY": "passive", "OPENBLAS_THREAD_TIMEOUT": "4"}


def run_eager(steps, checkpointing, quiet=False):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(steps)]
    if checkpointing:
        cmd.append("--gc")
    env = {k: v for k, v in os.environ.items() if k not in QUIET_THREADS}
    if quiet:
        env.update(QUIET_THREADS)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return r["tokens_per_second"], r["peak_rss"]


def run_qlorad(build, work, steps, method, checkpointing, keep="none"):
    cmd = [os.path.join(build, "tests", "bench", "train_memory_bench"), "--size", "134M", "--method", method,
           "--batch", str(BATCH), "--seq", str(SEQ), "--steps", str(steps), "--work-dir", work,
           "--checkpoint-keep", keep]
    if checkpointing:
        cmd.append("--gradient-checkpointing")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"([\d.]+) tokens/s.* peak (\d+) MB", out)
    return float(m.group(1)), int(m.group(2)) * 1e6


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--build", default="build")
    p.add_argument("--work-dir", default="/tmp/qlorad-train-eager-bench")
    p.add_argument("--child", action="store_true")
    p.add_argument("--gc", action="store_true")
    p.add_argument("--rows", default="", help="run only the rows whose name contains this text (e.g. +gc)")
    a = p.parse_args()
    if a.child:
        eager_child(a.steps, a.gc)
        return
    configs = [("eager LoRA", lambda: run_eager(a.steps, False)),
               ("eager LoRA, quiet threads", lambda: run_eager(a.steps, False, quiet=True)),
               ("qlorad LoRA", lambda: run_qlorad(a.build, a.work_dir, a.steps, "lora", False)),
               ("qlorad QLoRA", lambda: run_qlorad(a.build, a.work_dir, a.steps, "qlora", False)),
               ("eager LoRA +gc", lambda: run_eager(a.steps, True)),
               ("eager LoRA +gc, quiet threads", lambda: run_eager(a.steps, True, quiet=True)),
               ("qlorad LoRA +gc", lambda: run_qlorad(a.build, a.work_dir, a.steps, "lora", True)),
               ("qlorad QLoRA +gc", lambda: run_qlorad(a.build, a.work_dir, a.steps, "qlora", True)),
               ("qlorad LoRA +gc, keep attention",
                lambda: run_qlorad(a.build, a.work_dir, a.steps, "lora", True, "attention")),
               ("qlorad QLoRA +gc, keep attention",
                lambda: run_qlorad(a.build, a.work_dir, a.steps, "qlora", True, "attention")),
               ("qlorad LoRA +gc, keep all", lambda: run_qlorad(a.build, a.work_dir, a.steps, "lora", True, "all"))]
    configs = [(name, run) for name, run in configs if a.rows in name]
    results = {name: [] for name, _ in configs}
    for rep in range(a.reps):
        for name, run in configs:
            rate, peak = run()
            results[name].append((rate, peak))
            print("rep %d %-29s %6.1f tokens/s, peak RSS %5.0f MB" % (rep, name, rate, peak / 1e6), flush=True)
    med = {name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
           for name, rows in results.items()}
    print("\nbatch %d x seq %d, %d steps per run, %d reps each, alternating, %d cores" % (BATCH, SEQ, a.steps, a.reps,
                                                                                        os.cpu_count()))
    print("| run | tokens/s median (min-max) | peak RSS MB median (min-max) | tokens/s vs eager | RSS vs eager |")
    print("|---|---|---|---:|---:|")
    for name, rows in results.items():
        eager = med.get("eager LoRA +gc" if "+gc" in name else "eager LoRA")  # as a user's script runs
        rates, peaks = [r[0] for r in rows], [r[1] / 1e6 for r in rows]
        ratios = "%.2fx | %.2fx" % (med[name][0] / eager[0], med[name][1] / eager[1]) if eager else "- | -"
        print("| %s | %.1f (%.1f-%.1f) | %.0f (%.0f-%.0f) | %s |" % (
            name, med[name][0], min(rates), max(rates), med[name][1] / 1e6, min(peaks), max(peaks), ratios))
    for gc in ("", " +gc"):
        if "eager LoRA%s, quiet threads" % gc not in med:
            continue
        quiet = med["eager LoRA%s, quiet threads" % gc][0]
        print("qlorad LoRA%s / eager LoRA%s with quiet threads: %.2fx tokens/s; QLoRA: %.2fx"
              % (gc, gc, med["qlorad LoRA" + gc][0] / quiet, med["qlorad QLoRA" + gc][0] / quiet))
    if "qlorad QLoRA" in med and "eager LoRA" in med:
        print("QLoRA / LoRA tokens/s (qlorad): %.2f; qlorad LoRA +gc peak RSS / eager LoRA (no gc): %.2f"
              % (med["qlorad QLoRA"][0] / med["qlorad LoRA"][0], med["qlorad LoRA +gc"][1] / med["eager LoRA"][1]))


if __name__ == "__main__":
    main()
