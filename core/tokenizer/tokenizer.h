// The tokenizer interface of qlorad, and the factory that picks an implementation
// for a path:
//   - a tokenizer.json (HF tokenizers format, model type BPE)    -> HfTokenizer
//   - a tokenizer.model (SentencePiece)                           -> SentencePieceTokenizer
//   - a model directory: its tokenizer.json if present, else its tokenizer.model.
// A tokenizer_config.json next to the file (or in the directory) supplies
// bos_token / eos_token, add_bos_token / add_eos_token and chat_template.
//
// Contract: Encode gives exactly the ids HF tokenizers (tokenizer.json) or the
// SentencePiece library (tokenizer.model) give for the same text; input that is
// not valid UTF-8 is first made valid by replacing each maximal ill-formed subpart
// with U+FFFD (what Rust's from_utf8_lossy and JS's TextDecoder do), so it never
// fails or crashes on bytes. All methods are const and thread-safe.
#ifndef QLORAD_CORE_TOKENIZER_TOKENIZER_H_
#define QLORAD_CORE_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/tokenizer/tokenizer_config.h"

namespace qlorad::tokenizer {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads a tokenizer.json, a tokenizer.model or a model directory (see above).
  // NOT_FOUND if nothing loadable is there; UNIMPLEMENTED naming the construct
  // (e.g. "model.type 'WordPiece'") for tokenizer.json features qlorad does not
  // implement; INVALID_ARGUMENT naming the field for malformed files.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);

  // Token ids of `text`. With `add_special_tokens` the tokenizer's post-processing
  // adds its special tokens (e.g. BOS), as HF's encode(add_special_tokens=True).
  // Special tokens written in the text (e.g. "<|eot_id|>") are always recognised
  // for tokenizer.json (HF's default), never for SentencePiece models.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens = true) const = 0;

  // Text of `ids`; unknown ids are skipped. Always valid UTF-8 (incomplete byte
  // sequences become U+FFFD, as in HF).
  virtual std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const = 0;

  // Number of ids (largest id + 1, added tokens included).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  virtual std::optional<std::string> IdToToken(int32_t id) const = 0;
  // True for special/control tokens (those skip_special_tokens drops).
  virtual bool IsSpecial(int32_t id) const = 0;

  // The ids Encode(..., add_special_tokens=true) puts before / after the text
  // (e.g. {bos} / {}); prompt formats use them around a rendered example.
  virtual std::vector<int32_t> SpecialPrefix() const = 0;
  virtual std::vector<int32_t> SpecialSuffix() const = 0;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  // The token strings of bos/eos ("" if none).
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  // tokenizer_config.json of this tokenizer (empty fields if there was none).
  const TokenizerConfig& config() const { return config_; }

 protected:
  // Resolves bos/eos from config_ (then from `fallback_*` names) via TokenToId.
  void ResolveSpecialIds(const std::vector<std::string>& fallback_bos, const std::vector<std::string>& fallback_eos);

  TokenizerConfig config_;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_TOKENIZER_H_
