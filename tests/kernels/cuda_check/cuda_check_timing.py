"""Timings of the CUDA kernels for check_cuda_kernels.py (GPU only), with CUDA events.

Each timed launch is preceded by GPU work that keeps the device busy while Python
enqueues the events and the launch (so host/ctypes overhead is not measured):
  * cold: a 256 MiB memset, which also evicts the 60 MB L2 (weights come from HBM, as in
    a decode step over a whole model);
  * warm: torch.cuda._sleep (a spin kernel; the weight stays in L2 where it fits).
The median of the iterations is reported; GB/s counts the bytes the kernel must move
(packed weight + scales + x + y, or dequant's read + write), not cache traffic.
For comparison, torch's dense bf16 F.linear (cuBLAS) at the same shapes.
"""

import torch

import cuda_check_cases as cases

ITERS = 30


class Timer:
    def __init__(self):
        self.flush_buf = torch.empty(64 << 20, dtype=torch.float32, device="cuda")

    def prep(self, cold):
        if cold:
            self.flush_buf.zero_()
        elif hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(100_000)  # ~50 us spin, no memory traffic
        else:
            self.flush_buf[:1 << 16].add_(1.0)  # tiny: keeps earlier work queued ahead

    def median_us(self, launch, cold):
        pairs = []
        for _ in range(ITERS):
            self.prep(cold)
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            launch()
            e.record()
            pairs.append((s, e))
        torch.cuda.synchronize()
        ms = sorted(s.elapsed_time(e) for s, e in pairs)
        return 1000.0 * ms[len(ms) // 2]


def entry(timer, what, launch, nbytes):
    cold, warm = timer.median_us(launch, True), timer.median_us(launch, False)
    return {"what": what, "cold_us": round(cold, 2), "warm_us": round(warm, 2),
            "bytes": nbytes, "cold_GBps": round(nbytes / cold / 1e3, 1),
            "warm_GBps": round(nbytes / warm / 1e3, 1)}


def checked(backend, fn, *args):
    def launch():
        err = fn(*args)
        if err is not None:
            raise RuntimeError(err.decode())
    return launch


def gemv_timings(lib, backend, timer, gen):
    out = []
    for shape in [(4096, 4096), (11008, 4096), (4096, 11008)]:
        for dq in (False, True):
            w = cases.random_bits_weight("t", "nf4", shape, 64, dq, gen)
            d = backend.upload_weight(w)
            for batch in ([1, 8] if shape == (4096, 11008) else [1]):
                x = torch.randn(batch, shape[1], device="cuda")
                y = torch.empty(batch, shape[0], device="cuda")
                launch = checked(backend, lib.qc_gemv_f32, *backend.weight_args(w, d), shape[0],
                                 shape[1], x.data_ptr(), batch, 0, y.data_ptr(), 0)
                nbytes = w.numel // 2 + w.scale_bytes() + 4 * batch * (shape[0] + shape[1])
                out.append(entry(timer, f"gemv4bit nf4{'+dq' if dq else ''} bs64 "
                                 f"{shape[0]}x{shape[1]} batch{batch}", launch, nbytes))
        wb = torch.randn(shape, device="cuda").to(torch.bfloat16)
        xb = torch.randn(1, shape[1], device="cuda").to(torch.bfloat16)
        nbytes = 2 * (w.numel + shape[0] + shape[1])
        out.append(entry(timer, f"torch dense bf16 linear {shape[0]}x{shape[1]} batch1",
                         lambda: torch.nn.functional.linear(xb, wb), nbytes))
    return out


def dequant_timings(lib, backend, timer, gen):
    out = []
    shape = (4096, 11008)
    for dq in (False, True):
        w = cases.random_bits_weight("t", "nf4", shape, 64, dq, gen)
        d = backend.upload_weight(w)
        for fmt, size, fn in (("f32", 4, lib.qc_dequantize_f32), ("bf16", 2, lib.qc_dequantize_bf16)):
            buf = torch.empty(w.numel * size, dtype=torch.uint8, device="cuda")
            launch = checked(backend, fn, *backend.weight_args(w, d), buf.data_ptr(), 0)
            nbytes = w.numel // 2 + w.scale_bytes() + size * w.numel
            out.append(entry(timer, f"dequant nf4{'+dq' if dq else ''} bs64 {shape[0]}x{shape[1]} "
                           f"-> {fmt}", launch, nbytes))
    return out


def sgmv_timings(lib, backend, timer, gen):
    out = []
    for dtype in ("f32", "bf16"):
        case = cases.SgmvCase("time", dtype, 16, 4096, 4096, [8, 16, 32, 64], 64, 16, True, gen)
        x = case.x.contiguous().cuda()
        y = case.y0.contiguous().cuda()
        keep = []
        call = backend.sgmv_call(case, x, y, keep)
        size = 4 if dtype == "f32" else 2
        used = sorted(set(int(s) for s in case.row_segment))
        nbytes = size * (sum(case.ranks[s] * (case.in_f + case.out_f) for s in used)
                         + 16 * (case.in_f + 2 * case.out_f))
        out.append(entry(timer, f"sgmv {dtype} 16 rows 4096->4096 ranks{case.ranks}",
                         checked(backend, call), nbytes))
    return out


def run_timings(lib, backend):
    gen = torch.Generator().manual_seed(7)
    timer = Timer()
    rows = (gemv_timings(lib, backend, timer, gen) + dequant_timings(lib, backend, timer, gen)
            + sgmv_timings(lib, backend, timer, gen))
    err = lib.qc_synchronize()
    if err is not None:
        raise RuntimeError(err.decode())
    print(f"\n{'timing (median of %d, CUDA events)' % ITERS:<62} {'cold us':>9} {'GB/s':>7} "
          f"{'warm us':>9} {'GB/s':>7}")
    for r in rows:
        print(f"{r['what']:<62} {r['cold_us']:>9} {r['cold_GBps']:>7} {r['warm_us']:>9} "
              f"{r['warm_GBps']:>7}")
    return rows
