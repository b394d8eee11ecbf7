"""CPU stand-ins for the CUDA kernels, used only by check_cuda_kernels.py --selftest to
show that the harness accepts correct results and rejects wrong ones (each mutant
plants one plausible kernel bug) on a machine without a GPU. Same interface as
check_cuda_kernels.GpuBackend: dequant, gemv, sgmv, returning CPU tensors.
"""

import torch

# The code books as written in kernels/cuda/quant4bit_common.cuh.
NF4 = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)
FP4 = torch.tensor([
    0.0, 0.005208333333, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25,
    -0.0, -0.005208333333, -0.66666667, -1.0, -0.33333333, -0.5, -0.16666667, -0.25],
    dtype=torch.float32)

MUTANTS = [
    "nibble_swap",         # low nibble taken as the even element
    "scale_next_block",    # off-by-one block index for the scale
    "no_offset",           # double quant: offset not added back
    "bf16_truncate",       # bf16 by truncation instead of round-to-nearest-even
    "gemv_skip_last",      # last input column of each row not accumulated
    "gemv_batch0_only",    # every batch row multiplied with x[0]
    "sgmv_no_scaling",     # LoRA delta not scaled
    "sgmv_wrong_segment",  # row uses the next adapter
    "sgmv_touch_unlisted", # adds the delta of row 0's adapter to rows without one
]


class CpuEmulation:
    def __init__(self, mutant=None):
        assert mutant is None or mutant in MUTANTS, mutant
        self.mutant = mutant

    def scales(self, w):
        if not w.double_quant:
            return w.absmax
        from cuda_check_cases import DYNAMIC_MAP, NESTED_BLOCKSIZE
        blocks = torch.arange(w.codes.numel()) // NESTED_BLOCKSIZE
        t = DYNAMIC_MAP[w.codes.long()] * w.nested[blocks]
        return t if self.mutant == "no_offset" else t + w.offset

    def values(self, w):
        p = w.packed.long()
        hi, lo = (p & 15, p >> 4) if self.mutant == "nibble_swap" else (p >> 4, p & 15)
        idx = torch.stack([hi, lo], dim=1).reshape(-1)[:w.numel]
        block = torch.arange(w.numel) // w.blocksize
        scales = self.scales(w)
        if self.mutant == "scale_next_block":
            block = (block + 1).clamp(max=scales.numel() - 1)
        code = FP4 if w.qtype == "fp4" else NF4
        return code[idx] * scales[block]

    def dequant(self, w, fmt):
        v = self.values(w)
        if fmt == "f32":
            return v
        if self.mutant == "bf16_truncate":
            return (v.view(torch.int32) >> 16) & 0xFFFF
        return v.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF

    def gemv(self, w, out_f, in_f, x, bias):
        wd = self.values(w).double().view(out_f, in_f).clone()
        if self.mutant == "gemv_skip_last":
            wd[:, -1] = 0.0
        xd = x.double()
        if self.mutant == "gemv_batch0_only":
            xd = xd[:1].expand_as(xd)
        y = xd @ wd.t()
        if bias is not None:
            y += bias.double()
        return y.float()

    def sgmv(self, case):
        y = case.y0.double().clone()
        n = len(case.ranks)
        listed = set(int(r) for r in case.row_index)
        for p in range(case.row_index.numel()):
            r, s = int(case.row_index[p]), int(case.row_segment[p])
            if self.mutant == "sgmv_wrong_segment" and n > 1:
                s = (s + 1) % n
            sc = 1.0 if self.mutant == "sgmv_no_scaling" else float(case.scalings[s])
            delta = sc * ((case.x[r].double() @ case.a[s].double().t()) @ case.b[s].double().t())
            y[r] += delta
            if self.mutant == "sgmv_touch_unlisted" and p == 0:
                for other in range(y.shape[0]):
                    if other not in listed:
                        y[other] += delta
        return y.to(case.y0.dtype)
