// tokenizer.json normalizers: the subset qlorad implements byte-exactly
// (Sequence, Prepend, Replace, Strip; NFC/NFD/NFKC/NFKD and Lowercase through
// ICU, e.g. Qwen2's NFC). Anything else (Precompiled, BertNormalizer,
// StripAccents, ...) is rejected at load with an error naming it.
#ifndef QLORAD_CORE_TOKENIZER_NORMALIZER_H_
#define QLORAD_CORE_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include <nlohmann/json_fwd.hpp>

namespace qlorad::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (valid UTF-8 in, valid UTF-8 out).
  virtual void Normalize(std::string* text) const = 0;
};

// `where` names the JSON location for errors, e.g. "normalizer.normalizers[1]".
absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& json, const std::string& where);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_NORMALIZER_H_
