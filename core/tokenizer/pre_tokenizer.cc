#include "core/tokenizer/pre_tokenizer.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/pattern.h"

namespace qlorad::tokenizer {
namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

using Span = std::pair<size_t, size_t>;

// tokenizers' NormalizedString::split: `matches` (sorted, non-overlapping) turned into
// the covering list of (span, is_match), then combined per `behavior`.
std::vector<Span> SplitSpans(size_t size, const std::vector<Span>& matches, Behavior behavior, bool invert) {
  std::vector<std::pair<Span, bool>> parts;
  if (size == 0) {
    parts.push_back({{0, 0}, false});
  } else {
    size_t prev = 0;
    for (const auto& [b, e] : matches) {
      if (prev != b) parts.push_back({{prev, b}, false});
      parts.push_back({{b, e}, true});
      prev = e;
    }
    if (prev != size) parts.push_back({{prev, size}, false});
  }
  if (invert) {
    for (auto& p : parts) p.second = !p.second;
  }
  std::vector<std::pair<Span, bool>> out;  // (span, remove)
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const auto& p : parts) out.push_back({p.first, false});
      break;
    case Behavior::kRemoved:
      out = parts;
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& [span, is_match] : parts) {
        if (is_match && !previous_match && !out.empty()) {
          out.back().first.second = span.second;
        } else {
          out.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->second && !previous_match && !out.empty()) {
          out.back().first.first = it->first.first;
        } else {
          out.push_back({it->first, false});
        }
        previous_match = it->second;
      }
      std::reverse(out.begin(), out.end());
      break;
    case Behavior::kContiguous:
      for (const auto& [span, is_match] : parts) {
        if (is_match == previous_match && !out.empty()) {
          out.back().first.second = span.second;
        } else {
          out.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
  }
  std::vector<Span> spans;
  spans.reserve(out.size());
  for (const auto& [span, remove] : out) {
    if (!remove && span.first != span.second) spans.push_back(span);
  }
  return spans;
}

// Applies `split` (text -> spans) to every piece.
template <typename SplitFn>
void SplitEach(std::vector<PreToken>* pieces, SplitFn split) {
  std::vector<PreToken> out;
  out.reserve(pieces->size() * 2);
  for (PreToken& piece : *pieces) {
    const std::vector<Span> spans = split(piece.text);
    if (spans.size() == 1 && spans[0].first == 0 && spans[0].second == piece.text.size()) {
      out.push_back(std::move(piece));
      continue;
    }
    for (const auto& [b, e] : spans) {
      out.push_back({piece.text.substr(b, e - b), piece.at_input_start && b == 0});
    }
  }
  *pieces = std::move(out);
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    for (const auto& part : parts_) part->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    std::vector<Span> matches;
    SplitEach(pieces, [&](const std::string& text) {
      pattern_.FindAll(text, &matches);
      return SplitSpans(text.size(), matches, behavior_, invert_);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::shared_ptr<const Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& p : *pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
      }
    }
    if (regex_) {
      std::vector<Span> matches;
      SplitEach(pieces, [&](const std::string& text) {
        regex_->FindAll(text, &matches);
        return SplitSpans(text.size(), matches, Behavior::kIsolated, false);
      });
    }
    std::string mapped;
    for (PreToken& p : *pieces) {
      mapped.clear();
      AppendByteLevel(p.text, &mapped);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void PreTokenize(std::vector<PreToken>* pieces) const override {
    const Pattern space = Pattern::Literal(" ");
    for (PreToken& p : *pieces) {
      p.text = space.ReplaceAll(p.text, replacement_);
      const bool starts = p.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && p.at_input_start))) {
        p.text.insert(0, replacement_);
      }
    }
    if (split_) {
      const Pattern delimiter = Pattern::Literal(replacement_);
      std::vector<Span> matches;
      SplitEach(pieces, [&](const std::string& text) {
        delimiter.FindAll(text, &matches);
        return SplitSpans(text.size(), matches, Behavior::kMergedWithNext, false);
      });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

absl::StatusOr<Behavior> ParseBehavior(const nlohmann::json& json, const std::string& where) {
  const std::string name = json.is_string() ? json.get<std::string>() : "";
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(where, ".behavior: unknown split behavior '", name, "'"));
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> RegexSplit(const std::string& pattern, Behavior behavior, bool invert,
                                                         const std::string& where) {
  nlohmann::json json = {{"Regex", pattern}};
  auto compiled = Pattern::FromJson(json, where);
  if (!compiled.ok()) return compiled.status();
  return std::make_unique<SplitPreTokenizer>(std::move(*compiled), behavior, invert);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizerFromJson(const nlohmann::json& json,
                                                                   const std::string& where) {
  if (!json.is_object() || !json.contains("type") || !json["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a \"type\""));
  }
  const std::string type = json["type"].get<std::string>();
  if (type == "Sequence") {
    if (!json.contains("pretokenizers") || !json["pretokenizers"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".pretokenizers: missing or not an array"));
    }
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < json["pretokenizers"].size(); ++i) {
      auto part = PreTokenizerFromJson(json["pretokenizers"][i], absl::StrCat(where, ".pretokenizers[", i, "]"));
      if (!part.ok()) return part.status();
      parts.push_back(std::move(*part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    if (!json.contains("pattern")) return absl::InvalidArgumentError(absl::StrCat(where, ".pattern: missing"));
    auto pattern = Pattern::FromJson(json["pattern"], where + ".pattern");
    if (!pattern.ok()) return pattern.status();
    auto behavior = ParseBehavior(json.value("behavior", nlohmann::json()), where);
    if (!behavior.ok()) return behavior.status();
    return std::make_unique<SplitPreTokenizer>(std::move(*pattern), *behavior, json.value("invert", false));
  }
  if (type == "ByteLevel") {
    std::shared_ptr<const Regex> regex;
    if (json.value("use_regex", true)) {
      auto compiled = Regex::Create(kGpt2SplitPattern);
      if (!compiled.ok()) return compiled.status();
      regex = std::move(*compiled);
    }
    return std::make_unique<ByteLevelPreTokenizer>(json.value("add_prefix_space", true), std::move(regex));
  }
  if (type == "Metaspace") {
    PrependScheme scheme = PrependScheme::kAlways;
    if (json.contains("prepend_scheme") && json["prepend_scheme"].is_string()) {
      const std::string s = json["prepend_scheme"].get<std::string>();
      if (s == "always") scheme = PrependScheme::kAlways;
      else if (s == "first") scheme = PrependScheme::kFirst;
      else if (s == "never") scheme = PrependScheme::kNever;
      else return absl::InvalidArgumentError(absl::StrCat(where, ".prepend_scheme: unknown value '", s, "'"));
    } else if (json.contains("add_prefix_space")) {
      scheme = json.value("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(json.value("replacement", std::string("\xE2\x96\x81")), scheme,
                                                   json.value("split", true));
  }
  if (type == "Digits") {
    return RegexSplit(R"(\p{N})", json.value("individual_digits", false) ? Behavior::kIsolated : Behavior::kContiguous,
                      false, where);
  }
  if (type == "Whitespace") return RegexSplit(R"(\w+|[^\w\s]+)", Behavior::kRemoved, true, where);
  if (type == "WhitespaceSplit") return RegexSplit(R"(\s+)", Behavior::kRemoved, false, where);
  return absl::UnimplementedError(absl::StrCat(where, ": pre-tokenizer type '", type,
                                               "' is not supported by qlorad (supported: Sequence, Split, ByteLevel, "
                                               "Metaspace, Digits, Whitespace, WhitespaceSplit)"));
}

}  // namespace qlorad::tokenizer
