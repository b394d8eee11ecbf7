// Element types of safetensors files (names as the format spells them).
#ifndef QLORAD_CORE_MODEL_DTYPE_H_
#define QLORAD_CORE_MODEL_DTYPE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace qlorad {

enum class DType {
  kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64,
  kF8E4M3, kF8E5M2,
};

// "BF16" -> kBF16; nullopt for a name the format does not define.
std::optional<DType> ParseDType(std::string_view name);
// kBF16 -> "BF16".
const char* DTypeName(DType dtype);
// Bytes per element.
size_t DTypeSize(DType dtype);
// All names, comma separated, for error hints.
std::string SupportedDTypeNames();

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_DTYPE_H_
