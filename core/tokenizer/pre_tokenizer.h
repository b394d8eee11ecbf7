// tokenizer.json pre-tokenizers: Sequence, Split (String/Regex pattern, all five
// delimiter behaviours, invert), ByteLevel (add_prefix_space, use_regex with
// GPT-2's pattern), Metaspace (replacement, prepend_scheme, split), Digits,
// Whitespace, WhitespaceSplit. Others are rejected at load, naming the type.
// Regexes run on PCRE2 with UTF + UCP (Unicode properties), as HF's Oniguruma does.
#ifndef QLORAD_CORE_TOKENIZER_PRE_TOKENIZER_H_
#define QLORAD_CORE_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json_fwd.hpp>

namespace qlorad::tokenizer {

struct PreToken {
  std::string text;
  // True for the piece that starts at offset 0 of the original input (Metaspace "first").
  bool at_input_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits/rewrites every piece in place; empty pieces are dropped.
  virtual void PreTokenize(std::vector<PreToken>* pieces) const = 0;
};

// `where` names the JSON location for errors.
absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& json,
                                                                   const std::string& where);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_PRE_TOKENIZER_H_
