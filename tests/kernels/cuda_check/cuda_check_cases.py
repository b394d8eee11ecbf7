"""Inputs, float64 references and error bounds for check_cuda_kernels.py.

Backend-agnostic: every check takes a backend object (the CUDA kernels through ctypes,
or a CPU emulation for the self-test) with dequant(w, fmt), gemv(w, out, in, x, bias)
and sgmv(case) returning CPU tensors, and returns result rows (dicts).

Weights come from tests/reference/nf4_reference.py, the project's independent
torch implementation of bitsandbytes' NF4/FP4 quantization and double quantization
(written from the algorithm; bit-exact against qlorad's CPU kernels in nf4_kernels_test),
or, for the large timing shapes, from random packed bytes and random scales (the
kernels must decode any bytes; this skips a slow CPU quantization).

Tolerances (u = 2^-24, fp32 unit roundoff; gamma(k) = k·u / (1 - k·u)):
  * dequant fp32: bit-equal to code[idx] · absmax rounded once to fp32 (absmax itself
    = fp32(fp32(dyn[q] · nested) + offset) with double quant), so also within u·|v| of
    the float64 product; bf16: bit-equal to that fp32 value rounded to nearest even.
  * gemv: |y - y64| <= gamma(ceil(in/32) + 7) · (|x|·|W|ᵀ + |bias|), the worst-case bound
    of the kernel's summation (per-lane fp32 FMA chains, 5 shuffle levels, bias add).
  * sgmv fp32: <= gamma(ceil(in/32) + 5 + rank + 3) · (|y0| + |s|·(|x|·|A|ᵀ)·|B|ᵀ);
    bf16 adds the final rounding, 2^-8 · (|y64| + that bound). Rows not listed: bit-equal.
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "reference"))
import nf4_reference as ref  # noqa: E402

U32 = 2.0 ** -24
U_BF16 = 2.0 ** -8
NESTED_BLOCKSIZE = 256
DYNAMIC_MAP = ref.create_dynamic_map_signed()


def gamma(k):
    return k * U32 / (1.0 - k * U32)


class QWeight:
    """A 4-bit weight [out, in] as the kernels take it (CPU tensors)."""

    def __init__(self, name, qtype, shape, blocksize, packed, absmax=None, codes=None,
                 nested=None, offset=None):
        self.name, self.qtype, self.shape, self.blocksize = name, qtype, shape, blocksize
        self.numel = shape[0] * shape[1]
        self.packed, self.absmax = packed, absmax
        self.codes, self.nested, self.offset = codes, nested, offset
        self.double_quant = codes is not None
        self._deq = None

    def label(self):
        dq = "+dq" if self.double_quant else ""
        return f"{self.name} {self.qtype}{dq} bs{self.blocksize} {self.shape[0]}x{self.shape[1]}"

    def block_absmax(self):
        if not self.double_quant:
            return self.absmax
        return ref.dequantize_double_quant(self.codes, self.nested, self.offset, NESTED_BLOCKSIZE)

    def dequant_ref(self):
        """fp32 [numel]: code[idx] · absmax, one fp32 rounding (nf4_reference); cached."""
        if self._deq is None:
            self._deq = ref.dequantize_4bit(self.packed, self.block_absmax(), self.numel,
                                            self.blocksize, self.qtype)
        return self._deq

    def scale_bytes(self):
        blocks = (self.numel + self.blocksize - 1) // self.blocksize
        if not self.double_quant:
            return 4 * blocks
        return blocks + 4 * ((blocks + NESTED_BLOCKSIZE - 1) // NESTED_BLOCKSIZE)


def quantized_weight(name, qtype, shape, blocksize, double_quant, gen):
    """Quantizes random normal weights (with outliers and one all-zero block)."""
    n = shape[0] * shape[1]
    x = torch.randn(n, generator=gen) * 0.02
    x[torch.randint(0, n, (max(1, n // 1000),), generator=gen)] *= 20.0
    if n >= 4 * blocksize:
        x[blocksize:2 * blocksize] = 0.0
    packed, absmax = ref.quantize_4bit(x, blocksize, qtype)
    if not double_quant:
        return QWeight(name, qtype, shape, blocksize, packed, absmax=absmax)
    codes, nested, offset = ref.double_quantize(absmax, NESTED_BLOCKSIZE)
    return QWeight(name, qtype, shape, blocksize, packed, codes=codes, nested=nested,
                   offset=offset)


def random_bits_weight(name, qtype, shape, blocksize, double_quant, gen):
    """Random packed bytes and positive random scales (no quantizer)."""
    n = shape[0] * shape[1]
    blocks = (n + blocksize - 1) // blocksize
    packed = torch.randint(0, 256, ((n + 1) // 2,), generator=gen).to(torch.uint8)
    if not double_quant:
        absmax = torch.rand(blocks, generator=gen) * 0.1 + 0.01
        return QWeight(name, qtype, shape, blocksize, packed, absmax=absmax)
    codes = torch.randint(0, 256, (blocks,), generator=gen).to(torch.uint8)
    nested = torch.rand((blocks + NESTED_BLOCKSIZE - 1) // NESTED_BLOCKSIZE, generator=gen) * 0.02
    offset = torch.tensor(0.05, dtype=torch.float32)
    return QWeight(name, qtype, shape, blocksize, packed, codes=codes, nested=nested,
                   offset=offset)


def make_weights(gen, small):
    """(weight, gemv batches) pairs: NF4 and FP4, blocksizes 64 and 128, plain and double-
    quantized, odd element counts (blocks cross rows, a half-used last byte)."""
    q, r = quantized_weight, random_bits_weight
    cases = [
        (q("odd", "fp4", (33, 77), 64, False, gen), [1, 2, 3, 4, 5, 6, 7, 8]),
        (q("odd_in", "nf4", (3, 4097), 64, True, gen), [1, 9]),
        (q("one_row", "fp4", (1, 63), 128, False, gen), [1, 2]),
        (q("in1", "nf4", (1000, 1), 128, False, gen), [1, 3]),
        (q("mid", "nf4", (257, 1000), 128, True, gen), [5, 8]),
        (q("mid", "fp4", (192, 640), 64, True, gen), [1, 4]),
    ]
    if not small:
        cases += [
            (q("square", "nf4", (4096, 4096), 64, False, gen), list(range(1, 9)) + [9, 16]),
            (q("square", "fp4", (4096, 4096), 128, True, gen), [1, 2, 8]),
            (r("square_bits", "nf4", (4096, 4096), 128, True, gen), [1, 4]),
            (r("up_proj", "nf4", (11008, 4096), 64, False, gen), [1, 8]),
            (r("down_proj", "nf4", (4096, 11008), 64, True, gen), [1, 4]),
            (r("down_proj", "fp4", (4096, 11008), 128, True, gen), [2]),
        ]
    return cases


def row(kernel, case, ok, **fields):
    out = {"kernel": kernel, "case": case, "ok": bool(ok)}
    out.update(fields)
    return out


def float_bits(t):
    return t.contiguous().view(torch.int32)


def check_dequant(backend, w):
    want = w.dequant_ref()
    got = backend.dequant(w, "f32")
    bad = int((float_bits(got) != float_bits(want)).sum())
    # Distance to the float64 product on <= 2^20 evenly spaced elements (informative:
    # <= u relative, one rounding).
    at = torch.arange(0, w.numel, max(1, w.numel >> 20))
    code = (ref.NF4_CODE if w.qtype == "nf4" else ref.fp4_code()).double()
    byte = w.packed[at // 2].long()
    idx = torch.where(at % 2 == 0, byte >> 4, byte & 15)  # high nibble first
    prod64 = code[idx] * w.block_absmax().double()[at // w.blocksize]
    rel = ((got[at].double() - prod64).abs() / prod64.abs().clamp_min(1e-300)).max().item()
    rows = [row("dequant_f32", w.label(), bad == 0, n=w.numel, mismatches=bad,
                tol="bit-equal", max_rel_err_vs_f64=rel)]
    got16 = backend.dequant(w, "bf16")
    bad16 = int((got16 != ref.to_bf16_bits(want)).sum())
    rows.append(row("dequant_bf16", w.label(), bad16 == 0, n=w.numel, mismatches=bad16,
                    tol="bit-equal"))
    return rows


def check_gemv(backend, w, batch, with_bias, gen):
    out_f, in_f = w.shape
    x = torch.randn(batch, in_f, generator=gen)
    bias = torch.randn(out_f, generator=gen) * 0.1 if with_bias else None
    wd = w.dequant_ref().view(out_f, in_f).double()
    y64 = x.double() @ wd.t()
    mag = x.double().abs() @ wd.abs().t()
    if bias is not None:
        y64 += bias.double()
        mag += bias.double().abs()
    tol = gamma(math.ceil(in_f / 32) + 7) * mag
    got = backend.gemv(w, out_f, in_f, x, bias).double()
    err = (got - y64).abs()
    ok = bool(torch.isfinite(got).all()) and bool((err <= tol).all())
    worst = (err / mag.clamp_min(1e-300)).max().item() / U32
    case = f"{w.label()} batch{batch}" + (" +bias" if with_bias else "")
    return row("gemv_f32", case, ok, n=batch * out_f, max_abs_err=err.max().item(),
               err_over_sum_abs_in_u=worst, bound_in_u=gamma(math.ceil(in_f / 32) + 7) / U32)


class SgmvCase:
    """One mixed batch: rows listed in row_index use segment row_segment[p]."""

    def __init__(self, name, dtype, batch, in_f, out_f, ranks, max_rank, listed, grouped, gen):
        self.name, self.dtype = name, dtype
        self.in_f, self.out_f, self.ranks, self.max_rank = in_f, out_f, ranks, max_rank
        cast = (lambda t: t.to(torch.bfloat16)) if dtype == "bf16" else (lambda t: t)
        self.x = cast(torch.randn(batch, in_f, generator=gen))
        self.y0 = cast(torch.randn(batch, out_f, generator=gen))
        self.a = [cast((torch.rand(r, in_f, generator=gen) * 2 - 1) / math.sqrt(in_f)) for r in ranks]
        self.b = [cast(torch.randn(out_f, r, generator=gen) / math.sqrt(r)) for r in ranks]
        self.scalings = torch.tensor([(16.0 / r) * (-1.0 if s == 1 else 1.0)
                                      for s, r in enumerate(ranks)], dtype=torch.float32)
        rows = torch.randperm(batch, generator=gen)[:listed]
        segs = torch.randint(0, len(ranks), (listed,), generator=gen)
        if grouped:  # gathered rows ordered by segment: contiguous row segments
            order = torch.argsort(segs * batch + rows)
            rows, segs = rows[order], segs[order]
        self.row_index = rows.to(torch.int32)
        self.row_segment = segs.to(torch.int32)

    def label(self):
        return (f"{self.name} {self.dtype} {self.x.shape[0]}x{self.in_f}->{self.out_f} "
                f"ranks{self.ranks} rows{self.row_index.numel()}")


def make_sgmv_cases(gen, small):
    c = SgmvCase
    cases = [
        c("odd", "f32", 7, 1003, 77, [3, 5], 8, 5, True, gen),
        c("odd", "bf16", 7, 1003, 77, [3, 5], 8, 5, False, gen),
        c("empty", "f32", 4, 64, 32, [4], 4, 0, True, gen),
        c("mix", "f32", 12, 256, 384, [1, 8, 16, 64], 64, 10, True, gen),
        c("mix", "bf16", 12, 256, 384, [1, 8, 16, 64], 64, 10, False, gen),
    ]
    if not small:
        cases += [
            c("llama", "f32", 16, 4096, 4096, [8, 16, 64, 1], 64, 13, True, gen),
            c("llama", "bf16", 16, 4096, 4096, [8, 16, 64, 1], 64, 13, True, gen),
            c("mlp", "bf16", 9, 4096, 11008, [16, 32], 32, 9, False, gen),
            c("rank128", "f32", 6, 2048, 1024, [128, 4], 128, 6, False, gen),
        ]
    return cases


def check_sgmv(backend, case):
    y64 = case.y0.double().clone()
    mag = case.y0.double().abs()
    for p in range(case.row_index.numel()):
        r, s = int(case.row_index[p]), int(case.row_segment[p])
        a, b, sc = case.a[s].double(), case.b[s].double(), float(case.scalings[s])
        xr = case.x[r].double()
        y64[r] += sc * ((xr @ a.t()) @ b.t())
        mag[r] += abs(sc) * ((xr.abs() @ a.abs().t()) @ b.abs().t())
    got = backend.sgmv(case)
    listed = torch.zeros(case.y0.shape[0], dtype=torch.bool)
    listed[case.row_index.long()] = True
    untouched = got[~listed].float().view(-1).view(torch.int32)
    before = case.y0[~listed].float().view(-1).view(torch.int32)
    moved = int((untouched != before).sum())
    k = math.ceil(case.in_f / 32) + 5 + max(case.ranks) + 3
    tol = gamma(k) * mag
    if case.dtype == "bf16":
        tol = tol + U_BF16 * (y64.abs() + tol)
    err = (got.double() - y64).abs()[listed]
    ok = moved == 0 and bool(torch.isfinite(got).all()) and bool((err <= tol[listed]).all())
    worst = (err / tol[listed]).max().item() if err.numel() else 0.0
    delta = (y64 - case.y0.double()).abs()[listed]
    # The adapters' contribution must exceed the bound, or a no-op kernel would pass.
    if delta.numel() and not bool((delta > tol[listed]).any()):
        raise AssertionError(f"{case.label()}: LoRA delta below the tolerance; test is blind")
    return row(f"sgmv_{case.dtype}", case.label(), ok, max_abs_err=err.max().item() if err.numel() else 0.0,
               worst_err_over_tol=worst, unlisted_rows_changed=moved,
               max_delta=delta.max().item() if delta.numel() else 0.0)
