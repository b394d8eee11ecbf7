#include "core/tokenizer/stream_decoder.h"

#include "absl/strings/match.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {

StreamDecoder::StreamDecoder(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamDecoder::Step(int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_->Decode(ids_, skip_special_tokens_);
  const bool incomplete = absl::EndsWith(text, AsAbsl(kReplacementChar)) && held_ < kMaxHeldTokens;
  if (text.size() <= prefix_.size() || incomplete || !absl::StartsWith(text, prefix_)) {
    ++held_;
    return std::string();
  }
  std::string out = text.substr(prefix_.size());
  // New context: the shortest tail of ids (up to 4) that decodes with no U+FFFD, so
  // that its text is stable when more ids follow (a byte-level token may hold the
  // end of one character and the start of the next). Failing that, keep the window
  // (bounded by kMaxContextTokens, then dropped).
  bool found = false;
  for (size_t k = 1; k <= 4 && k <= ids_.size(); ++k) {
    std::vector<int32_t> tail(ids_.end() - static_cast<std::ptrdiff_t>(k), ids_.end());
    std::string tail_text = tokenizer_->Decode(tail, skip_special_tokens_);
    if (!tail_text.empty() && tail_text.find(kReplacementChar) == std::string::npos) {
      ids_ = std::move(tail);
      prefix_ = std::move(tail_text);
      found = true;
      break;
    }
  }
  if (!found) {
    if (ids_.size() > kMaxContextTokens) {
      ids_.clear();
      prefix_.clear();
    } else {
      prefix_ = text;
    }
  }
  held_ = 0;
  return out;
}

std::string StreamDecoder::Flush() {
  const std::string text = tokenizer_->Decode(ids_, skip_special_tokens_);
  std::string out = absl::StartsWith(text, prefix_) ? text.substr(prefix_.size()) : std::string();
  ids_.clear();
  prefix_.clear();
  held_ = 0;
  return out;
}

}  // namespace qlorad::tokenizer
