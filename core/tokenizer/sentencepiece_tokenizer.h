// A SentencePiece tokenizer.model, through the SentencePiece library (the same
// library Python's `sentencepiece` wraps, so ids are identical to
// sp.encode(text)). Control tokens written in the text are NOT recognised (as in
// SentencePiece). add_special_tokens prepends BOS / appends EOS according to
// tokenizer_config.json's add_bos_token / add_eos_token; without a config, BOS
// only (LlamaTokenizer's default).
#ifndef QLORAD_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
#define QLORAD_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/tokenizer/sentencepiece_library.h"
#include "core/tokenizer/tokenizer.h"

namespace qlorad::tokenizer {

class SentencePieceTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Create(const std::string& model_path,
                                                                        TokenizerConfig config);
  ~SentencePieceTokenizer() override;

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  std::optional<std::string> IdToToken(int32_t id) const override;
  bool IsSpecial(int32_t id) const override;
  std::vector<int32_t> SpecialPrefix() const override;
  std::vector<int32_t> SpecialSuffix() const override;

 private:
  SentencePieceTokenizer() = default;
  std::unique_ptr<SentencePieceLibrary> processor_;
  bool add_bos_ = true;
  bool add_eos_ = false;
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
