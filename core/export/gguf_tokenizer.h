// Embeds a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json of a
// model directory) as llama.cpp's tokenizer.ggml.* metadata.
//
// Two tokenizer.json kinds:
//   byte-level BPE (Llama-3, Qwen2, GPT-2): tokenizer.ggml.model "gpt2", .pre from the
//     pre-tokenizer's split regex ("llama-bpe", "qwen2", "gpt-2"), tokens = the vocab
//     strings in id order, merges "a b"; types NORMAL, CONTROL for special added
//     tokens (and <|...|> ones), USER_DEFINED for other added tokens.
//   SentencePiece-style BPE with byte_fallback (Llama-2, Mistral): .model "llama",
//     tokens, scores, types (BYTE for <0xNN>, UNKNOWN for the unk token, CONTROL
//     for special added tokens). llama.cpp merges the adjacent pair whose joined
//     token has the highest score, so the token made by the merge of rank k scores
//     -k (the merge order of tokenizer.json); single characters score 0 and other
//     tokens no merge makes score -1e9 (never preferred).
// Always: bos/eos/unknown/padding ids when present, add_bos_token/add_eos_token
// (what qlorad's tokenizer adds), tokenizer.chat_template, add_space_prefix for
// "llama". Ids up to config.vocab_size that the tokenizer lacks become "[PAD<i>]"
// (type UNUSED), as convert_hf_to_gguf.py writes them.
#ifndef QLORAD_CORE_EXPORT_GGUF_TOKENIZER_H_
#define QLORAD_CORE_EXPORT_GGUF_TOKENIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/export/gguf_writer.h"
#include "core/model/config.h"

namespace qlorad::gguf {

// llama.cpp's token types (llama_token_type / gguf TokenType).
enum class GgufTokenType : int32_t {
  kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

struct GgufVocabInfo {
  std::string model;  // "gpt2" or "llama"
  std::string pre;
  int64_t token_count = 0;  // = config.vocab_size
  int64_t padded = 0;       // "[PAD<i>]" entries written
  int64_t merges = 0;       // gpt2 only
  std::optional<int32_t> bos_id, eos_id;
  std::string eos_token;
  bool add_bos = false;
  bool add_eos = false;
};

// Reads `model_dir`'s tokenizer files and sets the tokenizer.ggml.* keys on
// `writer`. NOT_FOUND without tokenizer.json; UNIMPLEMENTED for a tokenizer kind
// llama.cpp cannot be told about (naming it); INVALID_ARGUMENT when the tokenizer
// has ids beyond config.vocab_size.
absl::StatusOr<GgufVocabInfo> SetTokenizerMetadata(const std::string& model_dir, const ModelConfig& config,
                                                   GgufWriter& writer);

}  // namespace qlorad::gguf

#endif  // QLORAD_CORE_EXPORT_GGUF_TOKENIZER_H_
