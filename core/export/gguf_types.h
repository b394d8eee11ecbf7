// GGML tensor types that qlorad writes into GGUF files, and their encoders.
//
// Block formats (ggml-common.h / ggml-quants.c, quantize_row_*_ref):
//   F32   4 bytes per value, little-endian IEEE binary32.
//   F16   2 bytes per value, IEEE binary16, rounded to nearest even.
//   Q8_0  blocks of 32 values, 34 bytes: fp16 d = amax / 127, then 32 int8
//         q = roundf(x / d) (ties away from zero).
//   Q4_0  blocks of 32 values, 18 bytes: `max` = the value with the largest |x|
//         (sign kept), d = max / -8, q = min(15, (int8)(x / d + 8.5)); fp16 d, then
//         16 bytes where byte j holds q[j] in the low nibble and q[j + 16] in the high.
// Blocks run along a row (the innermost dimension), so the quantized types need
// rows whose length is a multiple of 32. Torch-free.
#ifndef QLORAD_CORE_EXPORT_GGUF_TYPES_H_
#define QLORAD_CORE_EXPORT_GGUF_TYPES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qlorad::gguf {

enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8 };

// `offset` rounded up to a multiple of `alignment` (> 0): where GGUF sections and tensor
// data start.
inline uint64_t GgufAlignUp(uint64_t offset, uint64_t alignment) { return (offset + alignment - 1) / alignment * alignment; }

// "f32", "f16", "q4_0", "q8_0".
const char* GgmlTypeName(GgmlType type);
// Parses the names above (case-insensitive); INVALID_ARGUMENT listing them otherwise.
absl::StatusOr<GgmlType> ParseGgmlType(std::string_view name);
// Values per block: 1 for f32/f16, 32 for q4_0/q8_0.
int64_t GgmlBlockValues(GgmlType type);
// Bytes of one block.
int64_t GgmlBlockBytes(GgmlType type);
// Bytes of `values` values; `values` must be a multiple of GgmlBlockValues.
uint64_t GgmlBytes(GgmlType type, int64_t values);
// llama.cpp's general.file_type (LLAMA_FTYPE_*) for a file whose 2-D weights use `type`:
// ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q8_0 = 7.
uint32_t LlamaFileType(GgmlType type);

// IEEE binary16 conversions (round to nearest even; overflow gives infinity).
uint16_t Fp32ToFp16(float value);
float Fp16ToFp32(uint16_t bits);

// Encodes `values` (one or more whole rows) in `type`. INVALID_ARGUMENT when the
// count is not a multiple of the block size.
absl::StatusOr<std::string> EncodeValues(absl::Span<const float> values, GgmlType type);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_TYPES_H_
