// Run-time choice of the CPU instruction set used by the kernels.
//
// Every kernel has a portable scalar version. AVX2+FMA versions exist for quantize,
// dequantize, the fused 4-bit matmul, the 8-bit-activation 4-bit matmul and the 8-bit
// code search; AVX-512 versions for the fused 4-bit matmul (AVX-512F) and the
// 8-bit-activation one (AVX-512 VNNI, see Avx512VnniSupported). The best set the CPU and
// OS support is used, capped by the environment variable
// QLORAD_KERNELS_MAX_ISA=scalar|avx2|avx512 (read once; another value is ignored with a
// warning on stderr) and by LimitIsaForTesting. Quantize and dequantize are
// bit-identical across sets; the matmul agrees with the dequantize-then-multiply product
// up to fp32 summation order.
#ifndef QLORAD_KERNELS_CPU_ISA_H_
#define QLORAD_KERNELS_CPU_ISA_H_

#include <cstdint>

namespace qlorad::kernels {

enum class CpuIsa : uint8_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// "scalar", "avx2", "avx512".
const char* CpuIsaName(CpuIsa isa);

// The best set this CPU supports, after the environment cap.
CpuIsa DetectedIsa();

// The set the kernels use now: DetectedIsa() capped by LimitIsaForTesting.
CpuIsa ActiveIsa();

// Whether the CPU (and OS) also has AVX512BW, AVX512VL and AVX512_VNNI, which the
// 8-bit-activation 4-bit matmul's 512-bit body needs (gemm4bit_q8.h). A feature of the
// CPU, not a level: callers use it only where ActiveIsa() is kAvx512.
bool Avx512VnniSupported();

// Testing/benchmark hook: use no set above `max` (kAvx512 lifts the cap). Thread-safe;
// takes effect on the next kernel call. Returns the previous cap.
CpuIsa LimitIsaForTesting(CpuIsa max);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_CPU_ISA_H_
