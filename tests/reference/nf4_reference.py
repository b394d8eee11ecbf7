"""Independent Python/torch reference for bitsandbytes' blockwise 4-bit (NF4, FP4)
quantization and its 8-bit double quantization of the absmax values.

It follows bitsandbytes' CUDA kernels (csrc/kernels.cu), which is what produces the
`*-bnb-4bit` checkpoints users download:
  * absmax per block = max |x| (fp32); the block is scaled by x * (1.0f / absmax) in fp32.
  * NF4: index = number of decision-tree thresholds t with x > t (bitsandbytes'
    dQuantizeNF4: midpoints between neighbouring codes, an exact tie goes to the LOWER
    code; NaN (an all-zero block: 0 * inf) gives index 0).
  * FP4: sign bit 0b1000 when x < 0; magnitude rank from dQuantizeFP4's thresholds.
  * packing: element 2i in the high nibble, 2i+1 in the low nibble.
  * dequant: code[idx] * absmax in fp32, then cast (bf16: round to nearest even).
  * double quant: offset = mean(absmax) (here: fp64 sum / n rounded to fp32, see
    below), (absmax - offset) quantized blockwise (256) with create_dynamic_map(signed=True)
    and bitsandbytes' dQuantize<0> binary search; absmax' = code[q] * nested_absmax + offset.

The mean: bitsandbytes calls torch's float32 `absmax.mean()` on the GPU, whose
summation order is an implementation detail; qlorad (and this reference) define the
offset as the fp64 mean rounded once to fp32. Loading a checkpoint takes the stored
offset as is, so this only matters when quantizing from scratch (<= 1 ulp apart).

Only torch (1.13, Debian's /usr/bin/python3) is needed. Written from the algorithm, not
copied from bitsandbytes.
"""

import fractions
import struct

import torch


def f32_from_decimal(text):
    """The float32 nearest to a decimal literal, rounded once (like the `1.5f` literals
    in bitsandbytes' CUDA source; going through a double first can be 1 ulp off)."""
    exact = fractions.Fraction(text)
    if exact == 0:
        return 0.0
    guess = struct.unpack("<f", struct.pack("<f", float(exact)))[0]
    bits = struct.unpack("<i", struct.pack("<f", guess))[0]
    best = None
    for b in (bits - 1, bits, bits + 1):
        v = struct.unpack("<f", struct.pack("<i", b))[0]
        err = abs(fractions.Fraction(v) - exact)
        if best is None or err < best[0] or (err == best[0] and b % 2 == 0):
            best = (err, v)
    return best[1]


def f32_table(texts):
    return torch.tensor([f32_from_decimal(t) for t in texts], dtype=torch.float32)


NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)

# dQuantizeNF4's comparison constants (float literals) in ascending order (between code k
# and k+1). Four of them are 1 ulp away from the fp32 midpoint of their codes; the
# literal is what bitsandbytes compares against, so it is what counts.
NF4_THRESHOLDS = f32_table([
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"])

# FP4 (e2m1 with bitsandbytes' bias): magnitude of code & 0b111, sign in bit 3.
FP4_MAGNITUDE = f32_table([
    "0.0", "0.005208333333", "0.66666667", "1.0", "0.33333333", "0.5", "0.16666667", "0.25"])
# dQuantizeFP4's thresholds on |x|, ascending, and the 3-bit code of each magnitude rank.
FP4_THRESHOLDS = f32_table([
    "0.00260417", "0.0859375", "0.20833333", "0.29166667", "0.4166667", "0.583333", "0.8333333"])
FP4_RANK_TO_CODE = torch.tensor([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011],
                                dtype=torch.int64)


def fp4_code():
    """The 16 dequantized FP4 values (index = 4-bit code)."""
    sign = torch.tensor([1.0] * 8 + [-1.0] * 8, dtype=torch.float32)
    return FP4_MAGNITUDE.repeat(2) * sign


def create_dynamic_map_signed():
    """bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)."""
    max_exponent_bits, non_sign_bits = 7, 7
    data = []
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items)  # float32, as in bitsandbytes
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    # additional_items = 2**(7 - 7) - 1 = 0: nothing more.
    data.append(0)
    data.append(1.0)
    assert len(data) == 256
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def _blocks(n, blocksize):
    return (n + blocksize - 1) // blocksize


def blockwise_absmax_and_scaled(x, blocksize, keep=None):
    """x: 1-D float32. Returns (absmax[blocks], scaled[keep or n]) with scaled = x * (1/absmax);
    positions past n are zero padding scaled like their block."""
    n = x.numel()
    nb = _blocks(n, blocksize)
    pad = nb * blocksize - n
    xp = torch.cat([x, torch.zeros(pad, dtype=torch.float32)]) if pad else x
    xb = xp.view(nb, blocksize)
    absmax = xb.abs().max(dim=1).values
    recip = torch.ones(nb, dtype=torch.float32) / absmax  # 1.0f / absmax (inf when 0)
    scaled = (xb * recip[:, None]).reshape(-1)[:(n if keep is None else keep)]
    return absmax, scaled


def count_greater(scaled, thresholds):
    # NaN compares false everywhere -> 0, like the decision trees.
    return (scaled[:, None] > thresholds[None, :]).sum(dim=1).to(torch.int64)


def quantize_4bit(x, blocksize, quant_type):
    """Returns (packed uint8[(n+1)//2], absmax float32[blocks])."""
    x = x.reshape(-1).to(torch.float32)
    n = x.numel()
    # An odd n packs a padding 0.0 (scaled like its block) into the last low nibble,
    # as bitsandbytes' kernel does (it loads 0 past the end).
    absmax, scaled = blockwise_absmax_and_scaled(x, blocksize, keep=n + n % 2)
    if quant_type == "nf4":
        idx = count_greater(scaled, NF4_THRESHOLDS)
    elif quant_type == "fp4":
        rank = count_greater(scaled.abs(), FP4_THRESHOLDS)
        idx = FP4_RANK_TO_CODE[rank] + (scaled < 0).to(torch.int64) * 8
    else:
        raise ValueError(quant_type)
    packed = (idx[0::2] << 4) | idx[1::2]
    return packed.to(torch.uint8), absmax


def unpack_4bit(packed, n):
    p = packed.to(torch.int64)
    idx = torch.stack([p >> 4, p & 0xF], dim=1).reshape(-1)
    return idx[:n]


def dequantize_4bit(packed, absmax, n, blocksize, quant_type):
    """fp32 result: code[idx] * absmax[block] (one fp32 rounding)."""
    code = NF4_CODE if quant_type == "nf4" else fp4_code()
    idx = unpack_4bit(packed, n)
    block = torch.arange(n) // blocksize
    return code[idx] * absmax[block]


def quantize_8bit_dynamic(x, code):
    """bitsandbytes' dQuantize<0>: binary search over the sorted 256-entry code, then a
    midpoint decision against the neighbour. x: 1-D float32 (already scaled)."""
    n = x.numel()
    pivot = torch.full((n,), 127, dtype=torch.int64)
    upper_pivot = torch.full((n,), 255, dtype=torch.int64)
    lower_pivot = torch.zeros(n, dtype=torch.int64)
    lower = torch.full((n,), -1.0, dtype=torch.float32)
    upper = torch.full((n,), 1.0, dtype=torch.float32)
    val = code[pivot]
    step = 64
    while step > 0:
        gt = x > val
        lower_pivot = torch.where(gt, pivot, lower_pivot)
        lower = torch.where(gt, val, lower)
        upper_pivot = torch.where(gt, upper_pivot, pivot)
        upper = torch.where(gt, upper, val)
        pivot = torch.where(gt, pivot + step, pivot - step)
        val = code[pivot]
        step //= 2
    upper = torch.where(upper_pivot == 255, code[255].expand(n), upper)
    lower = torch.where(lower_pivot == 0, code[0].expand(n), lower)
    gt = x > val
    mid_up = (upper + val) * 0.5
    mid_lo = (lower + val) * 0.5
    res_gt = torch.where(x > mid_up, upper_pivot, pivot)
    res_le = torch.where(x < mid_lo, lower_pivot, pivot)
    return torch.where(gt, res_gt, res_le).to(torch.uint8)


def quantize_blockwise_8bit(x, blocksize, code):
    absmax, scaled = blockwise_absmax_and_scaled(x.reshape(-1).to(torch.float32), blocksize)
    return quantize_8bit_dynamic(scaled, code), absmax


def mean_offset(absmax):
    return torch.tensor(float(absmax.to(torch.float64).sum().item() / absmax.numel()),
                        dtype=torch.float32)


def double_quantize(absmax, nested_blocksize=256):
    """Returns (codes uint8[blocks], nested_absmax float32, offset float32 scalar)."""
    code = create_dynamic_map_signed()
    offset = mean_offset(absmax)
    centered = absmax - offset  # fp32
    q, nested_absmax = quantize_blockwise_8bit(centered, nested_blocksize, code)
    return q, nested_absmax, offset


def dequantize_double_quant(q, nested_absmax, offset, nested_blocksize=256):
    code = create_dynamic_map_signed()
    block = torch.arange(q.numel()) // nested_blocksize
    t = code[q.to(torch.int64)] * nested_absmax[block]  # fp32
    return t + offset  # separate fp32 add, as bitsandbytes does


def to_bf16_bits(x):
    """fp32 -> bf16 (torch's round to nearest even) as uint16 bit patterns (int32 tensor)."""
    b = x.to(torch.bfloat16).view(torch.int16).to(torch.int32)
    return b & 0xFFFF
