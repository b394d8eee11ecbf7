// The fields of HF's tokenizer_config.json that change token ids or prompts.
#ifndef QLORAD_CORE_TOKENIZER_TOKENIZER_CONFIG_H_
#define QLORAD_CORE_TOKENIZER_TOKENIZER_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace qlorad::tokenizer {

struct TokenizerConfig {
  std::string bos_token;  // "" if absent/null
  std::string eos_token;
  std::optional<bool> add_bos_token;  // only when the file states it
  std::optional<bool> add_eos_token;
  std::string chat_template;  // the "default" one when a list is given
  std::string tokenizer_class;
};

// Parses JSON text; INVALID_ARGUMENT naming `source` and the field on bad input.
absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(const std::string& json_text, const std::string& source);
// Reads `path`; an absent file gives an empty config (not an error).
absl::StatusOr<TokenizerConfig> ReadTokenizerConfigIfExists(const std::string& path);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_TOKENIZER_CONFIG_H_
