"""Runs qlorad's CUDA kernels (kernels/cuda/*.cu) on a GPU through ctypes and compares
them with float64 references (cuda_check_cases.py states each tolerance).

usage:
  check_cuda_kernels.py --lib libqlorad_cuda_check.so [--small] [--no-timing] [--quiet] [--out DIR]
  check_cuda_kernels.py --selftest [--lib SO]   (no GPU: CPU emulation must pass, mutated
                                                 emulations must fail; with --lib also the
                                                 shim's argument errors)

The library is cuda_check_shim.cu built with the kernels (deploy/gpu-check.sh does it).
Inputs are made on the CPU (seeded) and copied to the GPU; outputs are copied back and
compared on the CPU, so under compute-sanitizer (--small, PYTORCH_NO_CUDA_MEMORY_CACHING=1
for exact allocations) only the kernels under test run on the device. Output buffers
carry guard zones (off under --small) that must come back unchanged.
Prints a table and timings (CUDA events), writes DIR/cuda_check.json (DIR: --out or
$OUT), exits 1 on any mismatch or kernel error.
"""

import argparse
import ctypes
import json
import os
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_check_cases as cases  # noqa: E402
import cuda_check_emulation as emulation  # noqa: E402

I64, F32 = ctypes.c_int64, ctypes.c_float
WEIGHT_ARGS = [ctypes.c_int, I64, I64, I64, I64, I64, I64, I64, F32, I64]
SGMV_ARGS = [I64] * 14
GUARD = 64  # elements before and after each output buffer


class KernelError(RuntimeError):
    pass


def load_library(path):
    lib = ctypes.CDLL(os.path.abspath(path))
    sigs = {"qc_synchronize": [],
            "qc_dequantize_f32": WEIGHT_ARGS + [I64, I64],
            "qc_dequantize_bf16": WEIGHT_ARGS + [I64, I64],
            "qc_gemv_f32": WEIGHT_ARGS + [I64, I64, I64, I64, I64, I64, I64],
            "qc_sgmv_f32": SGMV_ARGS, "qc_sgmv_bf16": SGMV_ARGS}
    for name, args in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ctypes.c_char_p
    return lib


class GpuBackend:
    """The kernels on the GPU; returns CPU tensors. Raises KernelError on any error."""

    def __init__(self, lib, guards):
        self.lib, self.guard = lib, GUARD if guards else 0
        self.dev = torch.device("cuda")

    def check(self, what, err):
        if err is None:
            err = self.lib.qc_synchronize()
        if err is not None:
            raise KernelError(f"{what}: {err.decode()}")

    def upload_weight(self, w):
        d = {"packed": w.packed.to(self.dev)}
        if w.double_quant:
            d.update(codes=w.codes.to(self.dev), nested=w.nested.to(self.dev),
                     dyn=cases.DYNAMIC_MAP.to(self.dev))
        else:
            d["absmax"] = w.absmax.to(self.dev)
        return d

    @staticmethod
    def weight_args(w, d):
        p = lambda k: d[k].data_ptr() if k in d else 0  # noqa: E731
        offset = float(w.offset) if w.double_quant else 0.0
        return [1 if w.qtype == "fp4" else 0, p("packed"), w.numel, w.blocksize, p("absmax"),
                p("codes"), p("nested"), p("dyn"), offset, cases.NESTED_BLOCKSIZE]

    def guarded(self, n, dtype, init=None):
        """A buffer with guard zones filled with a sentinel; returns (whole, inner view)."""
        g = self.guard
        whole = torch.empty(n + 2 * g, dtype=dtype)
        whole.view(torch.int16 if whole.element_size() == 2 else torch.int32).fill_(-8531)
        if init is not None:
            whole[g:g + n] = init.reshape(-1)
        whole = whole.to(self.dev)
        return whole, whole[g:g + n]

    def unguard(self, what, whole, n):
        host = whole.cpu()
        g = self.guard
        if g:
            bits = host.view(torch.int16 if host.element_size() == 2 else torch.int32)
            zones = torch.cat([bits[:g], bits[g + n:]])
            if bool((zones != -8531).any()):
                raise KernelError(f"{what}: wrote outside its output buffer (guard zone changed)")
        return host[g:g + n]

    def dequant(self, w, fmt):
        d = self.upload_weight(w)
        dtype = torch.float32 if fmt == "f32" else torch.bfloat16
        whole, out = self.guarded(w.numel, dtype)
        fn = self.lib.qc_dequantize_f32 if fmt == "f32" else self.lib.qc_dequantize_bf16
        self.check("dequant", fn(*self.weight_args(w, d), out.data_ptr(), 0))
        self.check("dequant (sync)", None)
        got = self.unguard("dequant", whole, w.numel)
        return got if fmt == "f32" else got.view(torch.int16).to(torch.int32) & 0xFFFF

    def gemv(self, w, out_f, in_f, x, bias):
        d = self.upload_weight(w)
        xd = x.contiguous().to(self.dev)
        bd = bias.to(self.dev) if bias is not None else None
        batch = x.shape[0]
        whole, y = self.guarded(batch * out_f, torch.float32)
        err = self.lib.qc_gemv_f32(*self.weight_args(w, d), out_f, in_f, xd.data_ptr(), batch,
                                   bd.data_ptr() if bd is not None else 0, y.data_ptr(), 0)
        self.check("gemv", err)
        self.check("gemv (sync)", None)
        return self.unguard("gemv", whole, batch * out_f).view(batch, out_f)

    def sgmv_call(self, case, x, y, keep):
        a = [t.contiguous().to(self.dev) for t in case.a]
        b = [t.contiguous().to(self.dev) for t in case.b]
        ptrs = lambda ts: torch.tensor([t.data_ptr() for t in ts], dtype=torch.int64).to(self.dev)  # noqa
        arrays = [case.row_index.to(self.dev), case.row_segment.to(self.dev), ptrs(a), ptrs(b),
                  torch.tensor(case.ranks, dtype=torch.int32).to(self.dev),
                  case.scalings.to(self.dev)]
        rows = case.row_index.numel()
        ws = torch.full((max(1, rows * case.max_rank),), float("nan")).to(self.dev)
        keep.extend(a + b + arrays + [ws])  # alive until the kernels finished
        fn = self.lib.qc_sgmv_f32 if case.dtype == "f32" else self.lib.qc_sgmv_bf16
        return lambda: fn(rows, case.in_f, case.out_f, case.max_rank,
                          *[t.data_ptr() for t in arrays], x.data_ptr(), y.data_ptr(),
                          ws.data_ptr(), 0)

    def sgmv(self, case):
        xd = case.x.contiguous().to(self.dev)
        n = case.y0.numel()
        whole, y = self.guarded(n, case.y0.dtype, init=case.y0)
        keep = []
        self.check("sgmv", self.sgmv_call(case, xd, y, keep)())
        self.check("sgmv (sync)", None)
        return self.unguard("sgmv", whole, n).view(case.y0.shape)


def api_checks(lib):
    """Argument errors the wrappers must report without launching (no GPU needed)."""
    fake = 4096  # never dereferenced: every call below fails validation first
    w = lambda packed, numel, bs: [0, packed, numel, bs, fake, 0, 0, 0, 0.0, 256]  # noqa: E731
    checks = [
        ("dequant null packed", lib.qc_dequantize_f32(*w(0, 64, 64), fake, 0), "invalid arguments"),
        ("dequant odd blocksize", lib.qc_dequantize_bf16(*w(fake, 64, 63), fake, 0), "even"),
        ("dequant null out", lib.qc_dequantize_f32(*w(fake, 64, 64), 0, 0), "invalid arguments"),
        ("gemv shape mismatch", lib.qc_gemv_f32(*w(fake, 64, 64), 8, 9, fake, 1, 0, fake, 0),
         "shape"),
        ("gemv empty batch", lib.qc_gemv_f32(*w(fake, 64, 64), 8, 8, fake, 0, 0, fake, 0),
         "empty batch"),
        ("sgmv zero in_features", lib.qc_sgmv_f32(1, 0, 8, 4, *[fake] * 9, 0), "invalid shapes"),
        ("sgmv null x", lib.qc_sgmv_bf16(1, 8, 8, 4, *[fake] * 6, 0, fake, fake, 0), "null"),
    ]
    rows = [cases.row("api", name, got is not None and want in got.decode(),
                      message=got.decode() if got else None) for name, got, want in checks]
    empty = lib.qc_sgmv_f32(0, 8, 8, 4, *[0] * 10)  # no rows: success, nothing touched
    rows.append(cases.row("api", "sgmv zero rows is a no-op", empty is None, message=None))
    return rows


def run_checks(backend, small, results=None, seed=20261204):
    """Appends result rows to `results` (kept if a later check raises) and returns it."""
    gen = torch.Generator().manual_seed(seed)
    results = [] if results is None else results

    def guarded(fn, kernel, label):
        try:
            out = fn()
            results.extend(out if isinstance(out, list) else [out])
        except KernelError as e:
            results.append(cases.row(kernel, label, False, error=str(e)))
            if any(s in str(e) for s in ("illegal", "launch failure", "misaligned")):
                raise  # the context is gone; nothing after this can run

    for w, batches in cases.make_weights(gen, small):
        guarded(lambda: cases.check_dequant(backend, w), "dequant", w.label())
        for i, batch in enumerate(batches):
            guarded(lambda: cases.check_gemv(backend, w, batch, i % 2 == 1, gen), "gemv_f32",
                    f"{w.label()} batch{batch}")
    for case in cases.make_sgmv_cases(gen, small):
        guarded(lambda: cases.check_sgmv(backend, case), f"sgmv_{case.dtype}", case.label())
    return results


def print_table(results, failures_only=False):
    print(f"{'kernel':<13} {'ok':<4} {'case':<52} detail")
    for r in results:
        if failures_only and r["ok"]:
            continue
        detail = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()
                  if k not in ("kernel", "case", "ok")}
        print(f"{r['kernel']:<13} {'ok' if r['ok'] else 'FAIL':<4} {r['case']:<52} {detail}")


def selftest(lib_path):
    """CPU only: the harness must accept a correct emulation and reject broken ones."""
    results = []
    if lib_path:
        results += api_checks(load_library(lib_path))
    good = run_checks(emulation.CpuEmulation(), small=True)
    results.append(cases.row("selftest", "correct emulation passes", all(r["ok"] for r in good),
                             checks=len(good)))
    for mutant in emulation.MUTANTS:
        got = run_checks(emulation.CpuEmulation(mutant), small=True)
        failed = sorted({r["kernel"] for r in got if not r["ok"]})
        results.append(cases.row("selftest", f"mutant '{mutant}' is caught", bool(failed),
                                 failing=failed))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=os.environ.get("QLORAD_CUDA_CHECK_LIB"))
    ap.add_argument("--small", action="store_true", help="small cases only, no guards/timing")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="print failing rows only")
    ap.add_argument("--out", default=os.environ.get("OUT"))
    args = ap.parse_args()
    start = time.time()
    summary = {"torch": torch.__version__, "mode": "selftest" if args.selftest else
               ("small" if args.small else "full")}
    if args.selftest:
        results = selftest(args.lib)
    else:
        if not args.lib or not torch.cuda.is_available():
            print("check_cuda_kernels: needs --lib and a CUDA device (or --selftest)")
            return 2
        summary["device"] = torch.cuda.get_device_name(0)
        lib = load_library(args.lib)
        results = api_checks(lib)
        try:
            run_checks(GpuBackend(lib, guards=not args.small), args.small, results)
        except KernelError as e:
            results.append(cases.row("fatal", "CUDA context lost", False, error=str(e)))
        except Exception:  # a harness bug: keep what ran, report it, fail
            results.append(cases.row("fatal", "harness error", False, error=traceback.format_exc()))
        if not args.small and not args.no_timing and all(r["kernel"] != "fatal" for r in results):
            import cuda_check_timing as timing  # noqa: E402  (GPU only)
            try:
                summary["timings"] = timing.run_timings(lib, GpuBackend(lib, guards=False))
            except Exception:  # a launch error while timing is a failure too
                results.append(cases.row("timing", "timing run", False, error=traceback.format_exc()))
    print_table(results, failures_only=args.quiet)
    failures = [r for r in results if not r["ok"]]
    summary.update(results=results, failures=len(failures), checks=len(results),
                   seconds=round(time.time() - start, 1))
    print(f"check_cuda_kernels: {len(results) - len(failures)}/{len(results)} checks passed "
          f"in {summary['seconds']} s")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        name = "cuda_check_small.json" if args.small else "cuda_check.json"
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
