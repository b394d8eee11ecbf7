#include "core/tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/pattern.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& part : parts_) part->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// All tokens mapped back to bytes (a token with a character outside the table is
// taken verbatim), then one lossy UTF-8 string.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& token : *tokens) {
      token_bytes.clear();
      bool ok = true;
      size_t pos = 0;
      while (pos < token.size()) {
        const size_t len = ValidUtf8SequenceLength(token, pos);
        const int b = len == 0 ? -1 : CharToByte(DecodeUtf8(token, pos, len));
        if (b < 0) {
          ok = false;
          break;
        }
        token_bytes.push_back(static_cast<char>(b));
        pos += len;
      }
      bytes.append(ok ? token_bytes : token);
    }
    tokens->assign(1, SanitizeUtf8(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) token = pattern_.ReplaceAll(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t pending_count = 0;
    auto flush = [&]() {
      if (pending_count == 0) return;
      if (IsValidUtf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending_count; ++i) out.emplace_back(kReplacementChar);
      }
      pending.clear();
      pending_count = 0;
    };
    for (std::string& token : *tokens) {
      int byte = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        auto hex = [](char c) -> int {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          return -1;
        };
        const int hi = hex(token[3]);
        const int lo = hex(token[4]);
        if (hi >= 0 && lo >= 0) byte = hi * 16 + lo;
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string joined;
    for (const std::string& t : *tokens) joined += t;
    tokens->assign(1, std::move(joined));
  }
};

// Per token: drop up to `start` leading and `stop` trailing copies of `content`.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (content_.empty()) return;
    for (std::string& token : *tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i) begin += content_.size();
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_;
  size_t stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  // As tokenizers: in the first token every replacement char is dropped (unless the
  // prepend scheme is "never"); elsewhere each becomes a space.
  void DecodeChain(std::vector<std::string>* tokens) const override {
    const Pattern pattern = Pattern::Literal(replacement_);
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& token = (*tokens)[i];
      token = pattern.ReplaceAll(token, i == 0 && strip_first_ ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> DecoderFromJson(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object() || !json.contains("type") || !json["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a \"type\""));
  }
  const std::string type = json["type"].get<std::string>();
  if (type == "Sequence") {
    if (!json.contains("decoders") || !json["decoders"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".decoders: missing or not an array"));
    }
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < json["decoders"].size(); ++i) {
      auto part = DecoderFromJson(json["decoders"][i], absl::StrCat(where, ".decoders[", i, "]"));
      if (!part.ok()) return part.status();
      parts.push_back(std::move(*part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    if (!json.contains("pattern") || !json.contains("content") || !json["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": Replace needs \"pattern\" and a string \"content\""));
    }
    auto pattern = Pattern::FromJson(json["pattern"], where + ".pattern");
    if (!pattern.ok()) return pattern.status();
    return std::make_unique<ReplaceDecoder>(std::move(*pattern), json["content"].get<std::string>());
  }
  if (type == "Strip") {
    const std::string content = json.value("content", std::string(" "));
    return std::make_unique<StripDecoder>(content, json.value("start", size_t{0}), json.value("stop", size_t{0}));
  }
  if (type == "Metaspace") {
    bool strip_first = true;
    if (json.contains("prepend_scheme") && json["prepend_scheme"].is_string()) {
      strip_first = json["prepend_scheme"].get<std::string>() != "never";
    } else if (json.contains("add_prefix_space")) {
      strip_first = json.value("add_prefix_space", true);
    }
    return std::make_unique<MetaspaceDecoder>(json.value("replacement", std::string("\xE2\x96\x81")), strip_first);
  }
  return absl::UnimplementedError(absl::StrCat(where, ": decoder type '", type,
                                               "' is not supported by qlorad (supported: Sequence, ByteLevel, "
                                               "ByteFallback, Fuse, Replace, Strip, Metaspace)"));
}

}  // namespace qlorad::tokenizer
