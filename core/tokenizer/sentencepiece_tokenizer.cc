#include "core/tokenizer/sentencepiece_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Create(const std::string& model_path,
                                                                                       TokenizerConfig config) {
  auto tok = std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer());
  tok->processor_ = std::make_unique<SentencePieceLibrary>();
  const std::string error = tok->processor_->Load(model_path);
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": not a loadable SentencePiece model (", error, ")"));
  }
  tok->config_ = std::move(config);
  tok->add_bos_ = tok->config_.add_bos_token.value_or(true);
  tok->add_eos_ = tok->config_.add_eos_token.value_or(false);
  const int bos = tok->processor_->bos_id();
  const int eos = tok->processor_->eos_id();
  std::vector<std::string> fallback_bos, fallback_eos;
  if (bos >= 0) fallback_bos.push_back(tok->processor_->IdToPiece(bos));
  if (eos >= 0) fallback_eos.push_back(tok->processor_->IdToPiece(eos));
  tok->ResolveSpecialIds(fallback_bos, fallback_eos);
  if ((tok->add_bos_ && !tok->bos_id_) || (tok->add_eos_ && !tok->eos_id_)) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": add_", tok->add_bos_ && !tok->bos_id_ ? "bos" : "eos",
                                                   "_token is set but the model has no such token"));
  }
  return tok;
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::string input = IsValidUtf8(text) ? std::string(text) : SanitizeUtf8(text);
  std::vector<int> ids;
  const std::string error = processor_->Encode(input, &ids);
  if (!error.empty()) return absl::InternalError(absl::StrCat("SentencePiece encode failed: ", error));
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (add_special_tokens && add_bos_) out.push_back(*bos_id_);
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_special_tokens && add_eos_) out.push_back(*eos_id_);
  return out;
}

std::string SentencePieceTokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  const int size = processor_->PieceSize();
  for (int32_t id : ids) {
    if (id < 0 || id >= size) continue;
    if (skip_special_tokens && IsSpecial(id)) continue;
    kept.push_back(id);
  }
  std::string text;
  if (!processor_->Decode(kept, &text).empty()) return std::string();
  return SanitizeUtf8(text);
}

std::vector<int32_t> SentencePieceTokenizer::SpecialPrefix() const {
  if (add_bos_) return {*bos_id_};
  return {};
}

std::vector<int32_t> SentencePieceTokenizer::SpecialSuffix() const {
  if (add_eos_) return {*eos_id_};
  return {};
}

int32_t SentencePieceTokenizer::vocab_size() const { return processor_->PieceSize(); }

std::optional<int32_t> SentencePieceTokenizer::TokenToId(std::string_view token) const {
  const int id = processor_->PieceToId(std::string(token));
  // PieceToId maps unknown pieces to unk_id; only a real match counts.
  if (id < 0 || processor_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

std::optional<std::string> SentencePieceTokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= processor_->PieceSize()) return std::nullopt;
  return processor_->IdToPiece(id);
}

bool SentencePieceTokenizer::IsSpecial(int32_t id) const {
  if (id < 0 || id >= processor_->PieceSize()) return false;
  return processor_->IsControl(id) || processor_->IsUnknown(id);
}

}  // namespace qlorad::tokenizer
