#include "core/data/validation.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/data/string_view_compat.h"

namespace qlorad::data {

struct Validator::Regex {
  pcre2_code* code = nullptr;
  ~Regex() {
    if (code) pcre2_code_free(code);
  }
  bool FullMatch(std::string_view text) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                         PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NO_UTF_CHECK, md, nullptr);
    pcre2_match_data_free(md);
    return rc >= 0;
  }
};

namespace {
// Hash of all fields (roles and labels included), optionally of their normalised forms.
uint64_t RecordHash(const Example& example, bool normalize) {
  uint64_t h = 0x51ed2701u;
  auto mix = [&](std::string_view v) {
    h = normalize ? NormalizedHash64(v, false, h) : StableHash64(v) ^ (h * 0x9e3779b97f4a7c15ULL);
    h = (h ^ (h >> 31)) * 0x94d049bb133111ebULL + 0x1f;  // field separator
  };
  for (const ChatMessage& m : example.messages) mix(m.role);
  ForEachTextField(example, [&](std::string_view, const std::string& value) { mix(value); });
  mix(example.label);
  return h;
}
}  // namespace

TokenCounter EstimateTokenCounter() {
  return {"estimate:max(words,bytes/4)", [](std::string_view text) -> size_t {
            size_t words = 0;
            bool in_word = false;
            for (char c : text) {
              bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
              if (!space && !in_word) ++words;
              in_word = !space;
            }
            return std::max(words, (text.size() + 3) / 4);
          }};
}

absl::StatusOr<std::unique_ptr<Validator>> Validator::Create(const ValidationOptions& options) {
  auto v = std::unique_ptr<Validator>(new Validator(options));
  if (!options.target_regex.empty()) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    v->regex_ = std::make_unique<Regex>();
    v->regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(options.target_regex.data()),
                                    options.target_regex.size(), PCRE2_UTF, &error, &offset, nullptr);
    if (!v->regex_->code) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(error, buffer, sizeof(buffer));
      return absl::InvalidArgumentError(
          absl::StrCat("target_regex does not compile at offset ", offset, ": ", reinterpret_cast<char*>(buffer)));
    }
    pcre2_jit_compile(v->regex_->code, PCRE2_JIT_COMPLETE);
  }
  if (options.json_template && !options.json_template->is_object()) {
    return absl::InvalidArgumentError("json_template must be a JSON object, e.g. {\"label\": \"\", \"score\": 0}");
  }
  if (!options.token_counter.count) return absl::InvalidArgumentError("token_counter has no counting function");
  return v;
}

Validator::Validator(const ValidationOptions& options) : options_(options) {
  report_.token_counter = options.token_counter.name;
  report_.adherence_checked = !options.label_set.empty() || !options.target_regex.empty() || options.json_template;
}

Validator::~Validator() = default;

void Validator::Note(ValidationReport::Finding* finding, int64_t line) const {
  ++finding->count;
  if (finding->lines.size() < options_.max_listed) finding->lines.push_back(line);
}

bool Validator::MatchesTemplate(const nlohmann::json& value, const nlohmann::json& templ) {
  if (templ.is_null()) return true;
  if (templ.is_number()) return value.is_number();
  if (templ.type() != value.type()) return false;
  if (templ.is_object()) {
    for (auto it = templ.begin(); it != templ.end(); ++it) {
      auto found = value.find(it.key());
      if (found == value.end() || !MatchesTemplate(*found, it.value())) return false;
    }
  } else if (templ.is_array() && !templ.empty()) {
    for (const auto& element : value) {
      if (!MatchesTemplate(element, templ[0])) return false;
    }
  }
  return true;
}

Validator::Verdict Validator::Add(const Example& example) {
  ++report_.examples;
  const int64_t line = example.source_line;
  bool empty_required = false;
  ForEachTextField(example, [&](std::string_view field, const std::string& value) {
    if (!absl::StripAsciiWhitespace(value).empty()) return;
    ++report_.empty_fields[std::string(field)];
    if (field != "input") empty_required = true;  // alpaca's input is optional
  });
  if (example.format == DatasetFormat::kClassification && absl::StripAsciiWhitespace(example.label).empty()) {
    ++report_.empty_fields["label"];
    empty_required = true;
  }
  if (!exact_.insert(RecordHash(example, false)).second) {
    Note(&report_.exact_duplicates, line);
    return Verdict::kExactDuplicate;
  }
  if (!normalized_.insert(RecordHash(example, true)).second) {
    Note(&report_.normalized_duplicates, line);
  }
  if (empty_required) {
    Note(&report_.empty_required, line);
    return Verdict::kEmptyRequired;
  }
  ++report_.usable;
  size_t tokens = 0;
  ForEachTextField(example,
                   [&](std::string_view, const std::string& value) { tokens += options_.token_counter.count(value); });
  lengths_.push_back(static_cast<uint32_t>(std::min<size_t>(tokens, UINT32_MAX)));
  if (tokens > options_.max_seq_len) Note(&report_.over_length, line);
  if (example.format == DatasetFormat::kClassification) ++report_.label_distribution[example.label];
  std::string_view target = TargetText(example);
  if (!options_.label_set.empty()) {
    std::string_view trimmed = ToStd(absl::StripAsciiWhitespace(ToAbsl(target)));
    if (std::find(options_.label_set.begin(), options_.label_set.end(), trimmed) == options_.label_set.end()) {
      Note(&report_.label_set_violations, line);
    }
  }
  if (regex_ && !regex_->FullMatch(target)) Note(&report_.regex_violations, line);
  if (options_.json_template) {
    nlohmann::json parsed = nlohmann::json::parse(target, nullptr, false);
    if (parsed.is_discarded() || !MatchesTemplate(parsed, *options_.json_template)) {
      Note(&report_.template_violations, line);
    }
  }
  return Verdict::kKeep;
}

ValidationReport Validator::Finish() {
  ValidationReport r = report_;
  if (!lengths_.empty()) {
    std::vector<uint32_t> sorted = lengths_;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double p) {  // nearest-rank percentile
      size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
      return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
    };
    r.tokens.min = sorted.front();
    r.tokens.max = sorted.back();
    r.tokens.p50 = pct(50);
    r.tokens.p90 = pct(90);
    r.tokens.p99 = pct(99);
    for (uint32_t v : sorted) r.tokens.total += v;
    r.tokens.mean = static_cast<double>(r.tokens.total) / sorted.size();
  }
  const uint64_t n = r.usable;
  if (n < options_.min_usable) {
    r.regime = "too_small";
    r.refused = true;
    r.refusal = absl::StrCat("only ", n, " usable examples (minimum ", options_.min_usable,
                             "; hint: a few hundred precise examples beat thousands of mediocre ones — "
                             "collect more, or override with --allow-small (gRPC: allow_small_dataset), which is recorded)");
  } else if (n < options_.warn_below) {
    r.regime = "small";
    r.warnings.push_back(absl::StrCat(n, " usable examples: below ", options_.warn_below, ", results may be unstable"));
  } else if (n <= options_.narrow_max) {
    r.regime = "narrow";
  } else if (n < options_.broad_min) {
    r.regime = "between";
  } else {
    r.regime = "broad";
  }
  if (r.exact_duplicates.count)
    r.warnings.push_back(absl::StrCat(r.exact_duplicates.count, " exact duplicates dropped"));
  if (r.empty_required.count) {
    r.warnings.push_back(absl::StrCat(r.empty_required.count, " examples with an empty required field dropped"));
  }
  if (r.over_length.count) {
    r.warnings.push_back(absl::StrCat(r.over_length.count, " examples exceed max_seq_len=", options_.max_seq_len));
  }
  uint64_t adherence = r.label_set_violations.count + r.regex_violations.count + r.template_violations.count;
  if (adherence) r.warnings.push_back(absl::StrCat(adherence, " format-adherence violations"));
  return r;
}

namespace {
nlohmann::json FindingJson(const ValidationReport::Finding& f) { return {{"count", f.count}, {"lines", f.lines}}; }
}  // namespace

nlohmann::json ValidationReport::ToJson() const {
  nlohmann::json j;
  j["examples"] = examples;
  j["usable"] = usable;
  j["exact_duplicates"] = FindingJson(exact_duplicates);
  j["normalized_duplicates"] = FindingJson(normalized_duplicates);
  j["empty_required"] = FindingJson(empty_required);
  j["empty_fields"] = empty_fields;
  j["token_counter"] = token_counter;
  j["tokens"] = {{"min", tokens.min}, {"max", tokens.max}, {"mean", tokens.mean},  {"p50", tokens.p50},
                 {"p90", tokens.p90}, {"p99", tokens.p99}, {"total", tokens.total}};
  j["label_distribution"] = label_distribution;
  j["format_adherence"] = {{"checked", adherence_checked},
                           {"label_set_violations", FindingJson(label_set_violations)},
                           {"regex_violations", FindingJson(regex_violations)},
                           {"template_violations", FindingJson(template_violations)}};
  j["over_length"] = FindingJson(over_length);
  j["regime"] = regime;
  j["warnings"] = warnings;
  j["refused"] = refused;
  j["refusal"] = refusal;
  return j;
}

nlohmann::json ValidationOptions::ToJson() const {
  nlohmann::json j;
  j["token_counter"] = token_counter.name;
  j["max_seq_len"] = max_seq_len;
  j["label_set"] = label_set;
  j["target_regex"] = target_regex;
  j["json_template"] = json_template ? *json_template : nlohmann::json();
  j["thresholds"] = {
      {"min_usable", min_usable}, {"warn_below", warn_below}, {"narrow_max", narrow_max}, {"broad_min", broad_min}};
  return j;
}

}  // namespace qlorad::data
