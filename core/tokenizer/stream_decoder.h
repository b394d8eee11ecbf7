// Incremental detokenization for token streaming: feed ids one at a time, get
// the text they add. Never emits part of a UTF-8 character: while the decoded
// tail is incomplete (it decodes to U+FFFD), output is held back until the
// following tokens complete it (or Flush). Spacing rules that depend on context
// (SentencePiece's leading-space strip, byte fallback) come out as in a full
// Decode, because each step decodes the new ids together with a short context of
// previous ids (as tokenizers' DecodeStream does). Not thread-safe (one per stream).
#ifndef QLORAD_CORE_TOKENIZER_STREAM_DECODER_H_
#define QLORAD_CORE_TOKENIZER_STREAM_DECODER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"

namespace qlorad::tokenizer {

class StreamDecoder {
 public:
  // `tokenizer` must outlive this object.
  explicit StreamDecoder(const Tokenizer* tokenizer, bool skip_special_tokens = false);

  // Adds `id`; returns the newly completed text ("" if none yet).
  std::string Step(int32_t id);
  // Returns whatever is still held back (possibly ending in U+FFFD) and resets.
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;  // context ids + ids not yet emitted
  std::string prefix_;        // decode of the context ids (already emitted)
  // Held steps without output; past this, output is forced (a genuine U+FFFD).
  static constexpr size_t kMaxHeldTokens = 8;
  static constexpr size_t kMaxContextTokens = 16;
  size_t held_ = 0;
};

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_STREAM_DECODER_H_
