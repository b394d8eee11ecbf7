#include "core/tokenizer/normalizer.h"

#include <vector>

#include <nlohmann/json.hpp>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/pattern.h"
#include "core/tokenizer/utf8.h"

namespace qlorad::tokenizer {
namespace {

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void Normalize(std::string* text) const override {
    for (const auto& part : parts_) part->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// tokenizers' Prepend: only a non-empty string gets the prefix.
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string* text) const override { *text = pattern_.ReplaceAll(*text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    size_t begin = 0;
    size_t end = text->size();
    if (left_) {
      while (begin < end) {
        const size_t len = ValidUtf8SequenceLength(*text, begin);
        if (len == 0 || !IsUnicodeWhitespace(DecodeUtf8(*text, begin, len))) break;
        begin += len;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>((*text)[start]) & 0xC0) == 0x80) --start;
        const size_t len = ValidUtf8SequenceLength(*text, start);
        if (len == 0 || !IsUnicodeWhitespace(DecodeUtf8(*text, start, len))) break;
        end = start;
      }
    }
    *text = text->substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

// NFC/NFD/NFKC/NFKD through ICU's Normalizer2 (input is valid UTF-8).
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(const icu::Normalizer2* normalizer) : normalizer_(normalizer) {}
  void Normalize(std::string* text) const override {
    UErrorCode status = U_ZERO_ERROR;
    const icu::UnicodeString in = icu::UnicodeString::fromUTF8(*text);
    if (normalizer_->isNormalized(in, status) && U_SUCCESS(status)) return;
    status = U_ZERO_ERROR;
    const icu::UnicodeString out = normalizer_->normalize(in, status);
    if (U_FAILURE(status)) return;  // cannot happen for valid input; leave the text as is
    text->clear();
    out.toUTF8String(*text);
  }

 private:
  const icu::Normalizer2* normalizer_;  // owned by ICU
};

// tokenizers' Lowercase: each character mapped on its own with Rust's
// char::to_lowercase (full, context-free mappings: "İ" -> "i̇", "Σ" -> "σ" even at
// a word end). ICU lowercases one code point at a time here, so no context applies.
class LowercaseNormalizer : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    std::string out;
    out.reserve(text->size());
    size_t pos = 0;
    while (pos < text->size()) {
      const auto c = static_cast<unsigned char>((*text)[pos]);
      if (c < 0x80) {
        out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c));
        ++pos;
        continue;
      }
      size_t len = ValidUtf8SequenceLength(*text, pos);
      if (len == 0) len = 1;
      icu::UnicodeString one = icu::UnicodeString::fromUTF8(icu::StringPiece(text->data() + pos, static_cast<int32_t>(len)));
      one.toLower(icu::Locale::getRoot());
      one.toUTF8String(out);
      pos += len;
    }
    *text = std::move(out);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> NormalizerFromJson(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object() || !json.contains("type") || !json["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a \"type\""));
  }
  const std::string type = json["type"].get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    if (!json.contains("normalizers") || !json["normalizers"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".normalizers: missing or not an array"));
    }
    for (size_t i = 0; i < json["normalizers"].size(); ++i) {
      auto part = NormalizerFromJson(json["normalizers"][i], absl::StrCat(where, ".normalizers[", i, "]"));
      if (!part.ok()) return part.status();
      parts.push_back(std::move(*part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") {
    if (!json.contains("prepend") || !json["prepend"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".prepend: missing or not a string"));
    }
    return std::make_unique<PrependNormalizer>(json["prepend"].get<std::string>());
  }
  if (type == "Replace") {
    if (!json.contains("pattern") || !json.contains("content") || !json["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": Replace needs \"pattern\" and a string \"content\""));
    }
    auto pattern = Pattern::FromJson(json["pattern"], where + ".pattern");
    if (!pattern.ok()) return pattern.status();
    return std::make_unique<ReplaceNormalizer>(std::move(*pattern), json["content"].get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(json.value("strip_left", true), json.value("strip_right", true));
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = type == "NFC"    ? icu::Normalizer2::getNFCInstance(status)
                                : type == "NFD"  ? icu::Normalizer2::getNFDInstance(status)
                                : type == "NFKC" ? icu::Normalizer2::getNFKCInstance(status)
                                                 : icu::Normalizer2::getNFKDInstance(status);
    if (U_FAILURE(status) || n == nullptr) {
      return absl::InternalError(absl::StrCat(where, ": ICU has no ", type, " normalizer (", u_errorName(status), ")"));
    }
    return std::make_unique<UnicodeNormalizer>(n);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  return absl::UnimplementedError(absl::StrCat(where, ": normalizer type '", type,
                                               "' is not supported by qlorad (supported: Sequence, Prepend, "
                                               "Replace, Strip, NFC, NFD, NFKC, NFKD, Lowercase)"));
}

}  // namespace qlorad::tokenizer

