// tokenizer.json decoders, with tokenizers' decode_chain semantics (each decoder
// maps a list of token strings to a list of strings; the result is their
// concatenation): Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace. Others are rejected at load, naming the type.
#ifndef QLORAD_CORE_TOKENIZER_DECODER_H_
#define QLORAD_CORE_TOKENIZER_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json_fwd.hpp>

namespace qlorad::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& json, const std::string& where);

}  // namespace qlorad::tokenizer

#endif  // QLORAD_CORE_TOKENIZER_DECODER_H_
