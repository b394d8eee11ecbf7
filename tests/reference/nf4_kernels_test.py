"""Bit-exact check of qlorad's CPU 4-bit kernels against nf4_reference.py.

usage: /usr/bin/python3 nf4_kernels_test.py PATH/TO/nf4_dump

For normal, uniform and Student-t tensors of odd sizes, with exact ties planted on
every rounding threshold, several blocksizes, fp32 and bf16 inputs, NF4 and FP4, and
both the AVX2 and the scalar kernels, compares packed bytes, absmax, double-quant
codes / nested absmax / offset, and dequantized fp32 and bf16 values bit for bit.
Exits non-zero on the first mismatch (printing where).
"""

import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nf4_reference as ref  # noqa: E402


def read(path, dtype):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if not data:
        return torch.zeros(0, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype).clone()


def bits(t):
    """Bit patterns of a float32 tensor (so -0.0 != 0.0 and NaNs compare)."""
    return t.view(torch.int32)


def expect_equal(name, got, want, case):
    if got.shape != want.shape:
        raise AssertionError(f"{case}: {name}: shape {tuple(got.shape)} != {tuple(want.shape)}")
    if got.dtype == torch.float32:
        got, want = bits(got), bits(want)
    diff = (got.to(torch.int64) != want.to(torch.int64)).nonzero()
    if diff.numel():
        i = int(diff[0, 0])
        raise AssertionError(f"{case}: {name}: {diff.shape[0]} mismatches, first at {i}: "
                             f"got {got[i].item()} want {want[i].item()}")


def plant_ties(x, blocksize, gen):
    """Puts exact ties on every NF4 and FP4 threshold (and every code value) into some
    blocks: the block's absmax is set to a power of two A so that x * (1/A) == t exactly."""
    n = x.numel()
    blocks = (n + blocksize - 1) // blocksize
    specials = torch.cat([ref.NF4_THRESHOLDS, -ref.NF4_THRESHOLDS, ref.FP4_THRESHOLDS,
                          -ref.FP4_THRESHOLDS, ref.NF4_CODE, ref.fp4_code(),
                          torch.tensor([0.0, -0.0])])
    for b in range(0, blocks, 3):
        begin, end = b * blocksize, min(n, (b + 1) * blocksize)
        if end - begin < 2:
            continue
        a = 2.0 ** int(torch.randint(-3, 4, (1,), generator=gen))
        vals = specials[torch.randint(0, specials.numel(), (end - begin,), generator=gen)] * a
        vals[int(torch.randint(0, end - begin, (1,), generator=gen))] = a  # the absmax
        x[begin:end] = vals
    return x


def make_inputs():
    gen = torch.Generator().manual_seed(1234)
    cases = []
    sizes = [1, 3, 63, 64 * 37 + 13, 4096 * 3 + 77, 257 * 256 * 3 + 5]
    for n in sizes:
        cases.append((f"normal_n{n}", torch.randn(n, generator=gen)))
    cases.append(("uniform", torch.rand(5001, generator=gen) * 6 - 3))
    # Student-t with 3 degrees of freedom: normal / sqrt(chi2_3 / 3), heavy tails.
    z = torch.randn(40961, generator=gen)
    chi2 = (torch.randn(40961, 3, generator=gen) ** 2).sum(dim=1)
    cases.append(("student_t3", z / torch.sqrt(chi2 / 3)))
    # Ties planted into normal data of an odd size, and blocks of zeros.
    cases.append(("ties", plant_ties(torch.randn(64 * 300 + 33, generator=gen), 64, gen)))
    zeros = torch.randn(1000 + 1, generator=gen)
    zeros[64:192] = 0.0
    zeros[-1] = 0.0
    cases.append(("zero_blocks", zeros))
    return cases


def run_dump(tool, x, dtype, qtype, blocksize, scalar, workdir):
    path = os.path.join(workdir, "in.bin")
    raw = x.to(torch.bfloat16).view(torch.int16) if dtype == "bf16" else x.to(torch.float32)
    with open(path, "wb") as f:
        f.write(raw.numpy().tobytes())
    out = os.path.join(workdir, "out")
    os.makedirs(out, exist_ok=True)
    cmd = [tool, "--in", path, "--dtype", dtype, "--type", qtype, "--blocksize", str(blocksize),
           "--out", out] + (["--scalar"] if scalar else [])
    subprocess.run(cmd, check=True)
    return out


def check_case(tool, name, x, dtype, qtype, blocksize, scalar, workdir):
    case = f"{name} dtype={dtype} type={qtype} blocksize={blocksize} scalar={scalar}"
    out = run_dump(tool, x, dtype, qtype, blocksize, scalar, workdir)
    xin = x.to(torch.bfloat16).to(torch.float32) if dtype == "bf16" else x.to(torch.float32)
    n = xin.numel()
    packed, absmax = ref.quantize_4bit(xin, blocksize, qtype)
    expect_equal("packed", read(f"{out}/packed.u8", torch.uint8), packed, case)
    expect_equal("absmax", read(f"{out}/absmax.f32", torch.float32), absmax, case)
    deq = ref.dequantize_4bit(packed, absmax, n, blocksize, qtype)
    expect_equal("dequant fp32", read(f"{out}/deq.f32", torch.float32), deq, case)
    got_bf16 = read(f"{out}/deq.bf16", torch.int16).to(torch.int32) & 0xFFFF
    expect_equal("dequant bf16", got_bf16, ref.to_bf16_bits(deq), case)
    q, nested, offset = ref.double_quantize(absmax)
    expect_equal("double-quant codes", read(f"{out}/dq_codes.u8", torch.uint8), q, case)
    expect_equal("nested absmax", read(f"{out}/dq_nested.f32", torch.float32), nested, case)
    expect_equal("offset", read(f"{out}/dq_offset.f32", torch.float32), offset.reshape(1), case)
    rebuilt = ref.dequantize_double_quant(q, nested, offset)
    expect_equal("rebuilt absmax", read(f"{out}/dq_absmax.f32", torch.float32), rebuilt, case)
    deq_nested = ref.dequantize_4bit(packed, rebuilt, n, blocksize, qtype)
    expect_equal("dequant (double-quant scales)", read(f"{out}/deq_nested.f32", torch.float32),
                 deq_nested, case)


def check_tables(tool, workdir):
    subprocess.run([tool, "--tables", workdir], check=True)
    for name, want in [("nf4_code", ref.NF4_CODE), ("nf4_thresholds", ref.NF4_THRESHOLDS),
                       ("fp4_code", ref.fp4_code()), ("fp4_thresholds", ref.FP4_THRESHOLDS),
                       ("dynamic_map", ref.create_dynamic_map_signed())]:
        expect_equal(name, read(f"{workdir}/{name}.f32", torch.float32), want, "tables")
    dm = ref.create_dynamic_map_signed()
    assert abs(dm.min().item() - (-0.99296875)) < 1e-7 and dm.max().item() == 1.0 and dm[127] == 0


def check_tree_matches_argmin():
    """The threshold rule (bitsandbytes' CUDA decision trees) against bitsandbytes' pure-torch
    backend (argmin of |x - code|) on random data: NF4 identical values; FP4 differs only
    where its rounded decimal thresholds (e.g. 0.583333 vs 7/12) sit off the exact midpoints."""
    x = torch.randn(1 << 18, generator=torch.Generator().manual_seed(7))
    for qtype, code in (("nf4", ref.NF4_CODE), ("fp4", ref.fp4_code())):
        packed, _ = ref.quantize_4bit(x, 64, qtype)
        idx = ref.unpack_4bit(packed, x.numel())
        _, scaled = ref.blockwise_absmax_and_scaled(x, 64)
        nearest = torch.argmin((scaled[:, None] - code[None, :]).abs(), dim=1)
        mismatches = int((code[idx] != code[nearest]).sum())
        limit = 0 if qtype == "nf4" else 8
        if mismatches > limit:
            raise AssertionError(f"{qtype}: threshold rule and argmin differ on {mismatches} values")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tool = sys.argv[1]
    checked = 0
    with tempfile.TemporaryDirectory(prefix="nf4_kernels_") as workdir:
        check_tables(tool, workdir)
        check_tree_matches_argmin()
        for name, x in make_inputs():
            for qtype in ("nf4", "fp4"):
                for blocksize in (32, 64, 128, 4096):
                    if x.numel() > 100000 and blocksize != 64:
                        continue  # the big case exercises threading; one blocksize is enough
                    for dtype in ("f32", "bf16"):
                        for scalar in (False, True):
                            if scalar and (dtype == "bf16" or blocksize in (32, 4096)):
                                continue  # scalar == AVX2 is also checked by kernels_test
                            check_case(tool, name, x, dtype, qtype, blocksize, scalar, workdir)
                            checked += 1
    print(f"nf4_kernels_test: {checked} cases bit-exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
