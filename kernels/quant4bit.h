// Blockwise 4-bit quantization (NF4, FP4) exactly as bitsandbytes does it, on the CPU.
//
// Contract (bit-level; design.md §2):
//  * The input is the row-major flattened tensor of n elements, split into blocks of
//    `blocksize` (a power of two in [32, 4096]; 64 by default). A short tail block has
//    its own absmax.
//  * absmax[b] = max |x| over block b (fp32). Each element is scaled by
//    x * (1.0f / absmax[b]) in fp32 and rounded to the nearest code through the
//    midpoint thresholds of quant_tables.h (an exact tie goes to the lower NF4 code;
//    an all-zero block scales to NaN, which maps to index 0 as in bitsandbytes).
//  * Packing: element 2i in the HIGH nibble of byte i, element 2i+1 in the low nibble.
//    For an odd n the last low nibble holds the code of a padding 0.0 scaled like its
//    block (bitsandbytes' kernel loads 0 past the end): NF4 7, FP4 0, or 0 for an
//    all-zero block. packed.size() == (n + 1) / 2.
//  * Dequantization: code[index] * absmax[b], one fp32 rounding, then cast (bf16:
//    round to nearest even). With double quantization the absmax is first rebuilt as
//    (nested_code[q[b]] * nested_absmax[b / 256]) + offset, two fp32 roundings.
//
// All functions are thread-safe, use the shared pool of parallel.h, pick their
// instruction set at run time (cpu_isa.h) and return INVALID_ARGUMENT naming the bad
// argument.
#ifndef QLORAD_KERNELS_QUANT4BIT_H_
#define QLORAD_KERNELS_QUANT4BIT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace qlorad::kernels {

enum class QuantType : uint8_t { kNF4 = 0, kFP4 = 1 };
// "nf4" / "fp4" (bitsandbytes' quant_type strings).
const char* QuantTypeName(QuantType type);

// Element format of a dense input/output buffer. bf16 values are raw uint16 bits.
enum class FloatFormat : uint8_t { kF32 = 0, kBF16 = 1 };

inline constexpr int64_t kDefaultBlocksize = 64;
inline constexpr int64_t kMinBlocksize = 32;
inline constexpr int64_t kMaxBlocksize = 4096;
inline constexpr int64_t kNestedBlocksize = 256;

// OK iff blocksize is a power of two in [kMinBlocksize, kMaxBlocksize].
absl::Status CheckBlocksize(int64_t blocksize);
// ceil(n / blocksize) and ceil(n / 2).
inline int64_t NumBlocks(int64_t n, int64_t blocksize) { return (n + blocksize - 1) / blocksize; }
inline int64_t PackedBytes(int64_t n) { return (n + 1) / 2; }

// The per-block scales of a 4-bit tensor: either plain fp32 absmax, or bitsandbytes'
// double quantization (8-bit codes + nested fp32 absmax per kNestedBlocksize codes +
// one fp32 offset, decoded with a 256-entry code such as kDynamicMapSigned).
struct AbsmaxView {
  absl::Span<const float> absmax;          // plain: NumBlocks(n, blocksize) values
  absl::Span<const uint8_t> codes;         // nested: NumBlocks(n, blocksize) codes
  absl::Span<const float> nested_absmax;   // nested: NumBlocks(#codes, nested_blocksize)
  absl::Span<const float> nested_code;     // nested: 256 values
  float offset = 0.0f;                     // nested: added after the scale
  int64_t nested_blocksize = kNestedBlocksize;

  bool nested() const { return !codes.empty(); }
  // The fp32 absmax of block b (no bounds checks; Validate first).
  float Get(int64_t b) const {
    if (!nested()) return absmax[b];
    const float t = nested_code[codes[b]] * nested_absmax[b / nested_blocksize];
    return t + offset;
  }
};

// A packed 4-bit tensor of `numel` elements (read-only view; owns nothing).
struct Packed4bitView {
  QuantType type = QuantType::kNF4;
  absl::Span<const uint8_t> packed;  // PackedBytes(numel)
  int64_t numel = 0;
  int64_t blocksize = kDefaultBlocksize;
  AbsmaxView scales;

  // Checks sizes, blocksize and that every buffer is present.
  absl::Status Validate() const;
};

// Quantizes n = x.size() elements (fp32, or bf16 bits for the uint16 overload).
// packed.size() must be PackedBytes(n) and absmax.size() NumBlocks(n, blocksize).
absl::Status Quantize4bit(QuantType type, absl::Span<const float> x, int64_t blocksize,
                          absl::Span<uint8_t> packed, absl::Span<float> absmax);
absl::Status Quantize4bit(QuantType type, absl::Span<const uint16_t> x_bf16, int64_t blocksize,
                          absl::Span<uint8_t> packed, absl::Span<float> absmax);

// Dequantizes elements [begin, begin + count) of `w` into out (count values).
// count == 0 is allowed; the whole tensor is begin = 0, count = w.numel.
absl::Status Dequantize4bit(const Packed4bitView& w, int64_t begin, int64_t count,
                            absl::Span<float> out);
absl::Status Dequantize4bit(const Packed4bitView& w, int64_t begin, int64_t count,
                            absl::Span<uint16_t> out_bf16);

}  // namespace qlorad::kernels

#endif  // QLORAD_KERNELS_QUANT4BIT_H_
