// A tokenizer.json (HF tokenizers) tokenizer with a BPE model: byte-level BPE
// with a regex pre-tokenizer (GPT-2, Llama-3, Qwen2 without NFC) and
// SentencePiece-style BPE (Llama-2/Mistral: Prepend+Replace normalizer or
// Metaspace pre-tokenizer, byte_fallback). The pipeline mirrors tokenizers'
// encode: added tokens split out of the raw text -> normalizer per remaining
// piece -> normalized added tokens -> pre-tokenizer -> BPE per pre-token ->
// post-processor (only with add_special_tokens).
// Post-processors: TemplateProcessing (single sequence), ByteLevel, Roberta,
// Bert, Sequence. When tokenizer_config.json states add_bos_token/add_eos_token,
// they replace the post-processor with "[bos] $A [eos]" as transformers'
// LlamaTokenizerFast does.
#ifndef QLORAD_CORE_TOKENIZER_HF_TOKENIZER_H_
#define QLORAD_CORE_TOKENIZER_HF_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/added_vocabulary.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/decoder.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/tokenizer.h"

namespace qlorad::tokenizer {

class HfTokenizer : public Tokenizer {
 public:
  // `json_text` is the tokenizer.json contents; `source` names it in errors. Never throws:
  // malformed or hostile files are InvalidArgument/Unimplemented.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> Create(const std::string& json_text, const std::string& source,
                                                             TokenizerConfig config);

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  std::optional<std::string> IdToToken(int32_t id) const override;
  bool IsSpecial(int32_t id) const override;
  std::vector<int32_t> SpecialPrefix() const override { return special_prefix_; }
  std::vector<int32_t> SpecialSuffix() const override { return special_suffix_; }

 private:
  HfTokenizer() = default;
  // Create without the exception guard: a field of an unexpected JSON type throws.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> CreateUnguarded(const std::string& json_text,
                                                                      const std::string& source, TokenizerConfig config);
  // Normalizes, pre-tokenizes and runs the model over one non-token piece.
  absl::Status EncodePiece(std::string_view piece, bool at_input_start, std::vector<int32_t>* ids) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  // Post-processing with add_special_tokens: prefix + ids + suffix.
  std::vector<int32_t> special_prefix_;
  std::vector<int32_t> special_suffix_;
  int32_t vocab_size_ = 0;
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_HF_TOKENIZER_H_
