// bitsandbytes' blockwise 8-bit quantization with a 256-entry code (the dynamic map),
// used for the double quantization ("compress_statistics") of 4-bit absmax values.
//
// Contract: absmax2[b] = max |x| of block b; each x is scaled by x * (1.0f / absmax2[b])
// and mapped by bitsandbytes' dQuantize<0> (a 7-step binary search over the ascending
// code, then a midpoint decision against the neighbour code). Dequant = code[q] *
// absmax2[b] in fp32.
#ifndef QLORAD_KERNELS_BLOCKWISE8BIT_H_
#define QLORAD_KERNELS_BLOCKWISE8BIT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qlorad::kernels {

// One value through dQuantize<0>; code has 256 ascending entries.
uint8_t QuantizeDynamic8bit(const float* code, float x);

// x.size() values in blocks of `blocksize` (power of two, 32..4096). q.size() == x.size(),
// absmax.size() == NumBlocks(x.size(), blocksize), code.size() == 256.
absl::Status QuantizeBlockwise8bit(absl::Span<const float> x, int64_t blocksize,
                                   absl::Span<const float> code, absl::Span<uint8_t> q,
                                   absl::Span<float> absmax);
absl::Status DequantizeBlockwise8bit(absl::Span<const uint8_t> q, absl::Span<const float> absmax,
                                     int64_t blocksize, absl::Span<const float> code,
                                     absl::Span<float> out);

// offset = mean(absmax): the fp64 sum / n rounded once to fp32 (bitsandbytes uses
// torch's fp32 mean, whose summation order is unspecified; see design.md §2 / README).
float MeanOffset(absl::Span<const float> absmax);

// Double quantization of the absmax of a 4-bit tensor: offset = MeanOffset(absmax);
// (absmax - offset) in fp32 quantized blockwise with `code` (kDynamicMapSigned) and
// `nested_blocksize` (256). codes.size() == absmax.size(),
// nested_absmax.size() == NumBlocks(absmax.size(), nested_blocksize). Returns offset.
absl::StatusOr<float> DoubleQuantizeAbsmax(absl::Span<const float> absmax, int64_t nested_blocksize,
                                           absl::Span<const float> code, absl::Span<uint8_t> codes,
                                           absl::Span<float> nested_absmax);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_BLOCKWISE8BIT_H_
