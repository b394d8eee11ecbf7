#include "core/export/gguf_types.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace qlorad::gguf {
namespace {

constexpr int64_t kBlock = 32;

void PutU16(uint16_t value, char* out) {
  out[0] = static_cast<char>(value & 0xff);
  out[1] = static_cast<char>(value >> 8);
}

// One Q8_0 block (34 bytes) of 32 values.
void QuantizeQ8_0Block(const float* x, char* out) {
  float amax = 0.0f;
  for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  PutU16(Fp32ToFp16(d), out);
  for (int64_t j = 0; j < kBlock; ++j) out[2 + j] = static_cast<char>(static_cast<int8_t>(std::roundf(x[j] * id)));
}

// One Q4_0 block (18 bytes) of 32 values.
void QuantizeQ4_0Block(const float* x, char* out) {
  float amax = 0.0f, max = 0.0f;
  for (int64_t j = 0; j < kBlock; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  PutU16(Fp32ToFp16(d), out);
  auto level = [&](float v) {
    return static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(v * id + 8.5f)));
  };
  for (int64_t j = 0; j < kBlock / 2; ++j)
    out[2 + j] = static_cast<char>(level(x[j]) | (level(x[j + kBlock / 2]) << 4));
}

}  // namespace

const char* GgmlTypeName(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return "f32";
    case GgmlType::kF16: return "f16";
    case GgmlType::kQ4_0: return "q4_0";
    case GgmlType::kQ8_0: return "q8_0";
  }
  return "?";
}

absl::StatusOr<GgmlType> ParseGgmlType(std::string_view name) {
  const std::string text(name);
  const std::string lower = absl::AsciiStrToLower(text);
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0})
    if (lower == GgmlTypeName(type)) return type;
  return absl::InvalidArgumentError(absl::StrCat("type '", text, "' is not one of f32, f16, q8_0, q4_0"));
}

int64_t GgmlBlockValues(GgmlType type) {
  return type == GgmlType::kQ4_0 || type == GgmlType::kQ8_0 ? kBlock : 1;
}

int64_t GgmlBlockBytes(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return 4;
    case GgmlType::kF16: return 2;
    case GgmlType::kQ4_0: return 2 + kBlock / 2;
    case GgmlType::kQ8_0: return 2 + kBlock;
  }
  return 0;
}

uint64_t GgmlBytes(GgmlType type, int64_t values) {
  return static_cast<uint64_t>(values / GgmlBlockValues(type)) * static_cast<uint64_t>(GgmlBlockBytes(type));
}

uint32_t LlamaFileType(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return 0;
    case GgmlType::kF16: return 1;
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ8_0: return 7;
  }
  return 0;
}

uint16_t Fp32ToFp16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00 | static_cast<uint16_t>((abs >> 13) & 0x3ff);  // NaN stays NaN
  if (abs >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to infinity (ties to even)
  if (abs < 0x38800000) {  // below 2^-14: a half subnormal, units of 2^-24
    float magnitude;
    std::memcpy(&magnitude, &abs, sizeof(magnitude));
    return sign | static_cast<uint16_t>(std::nearbyint(magnitude * 16777216.0f));  // exact scaling, RNE
  }
  const uint32_t exponent = (abs >> 23) - 127 + 15;
  const uint32_t mantissa = abs & 0x7fffff;
  uint32_t half = (exponent << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // a carry moves into the exponent correctly
  return sign | static_cast<uint16_t>(half);
}

float Fp16ToFp32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa ? std::nanf("") : INFINITY;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), static_cast<int>(exponent) - 25);
  }
  uint32_t out;
  std::memcpy(&out, &magnitude, sizeof(out));
  out |= sign;
  std::memcpy(&magnitude, &out, sizeof(out));
  return magnitude;
}

absl::StatusOr<std::string> EncodeValues(absl::Span<const float> values, GgmlType type) {
  const int64_t n = static_cast<int64_t>(values.size());
  if (n % GgmlBlockValues(type) != 0)
    return absl::InvalidArgumentError(absl::StrCat(n, " values are not a whole number of ", GgmlTypeName(type),
                                                   " blocks of ", GgmlBlockValues(type)));
  std::string out(GgmlBytes(type, n), '\0');
  char* dst = out.data();
  switch (type) {
    case GgmlType::kF32:
      for (int64_t i = 0; i < n; ++i) {  // explicit little-endian
        uint32_t bits;
        std::memcpy(&bits, &values[i], 4);
        for (int b = 0; b < 4; ++b) dst[4 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
      }
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) PutU16(Fp32ToFp16(values[i]), dst + 2 * i);
      break;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kBlock; ++b) QuantizeQ8_0Block(values.data() + b * kBlock, dst + b * GgmlBlockBytes(type));
      break;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kBlock; ++b) QuantizeQ4_0Block(values.data() + b * kBlock, dst + b * GgmlBlockBytes(type));
      break;
  }
  return out;
}

}  // namespace qlorad::gguf
