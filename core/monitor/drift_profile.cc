#include "core/monitor/drift_profile.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/monitor/drift_stats.h"
#include "core/util/file_util.h"

namespace qlorad::monitor {
namespace {

using Json = nlohmann::json;
constexpr char kFormatName[] = "qlorad.drift_profile";

absl::Status ValidateOptions(const DriftProfileOptions& o) {
  if (o.top_k < 1) return absl::InvalidArgumentError(absl::StrCat("top_k ", o.top_k, " must be >= 1"));
  if (o.rare_min_count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("rare_min_count ", o.rare_min_count, " must be >= 1"));
  }
  if (o.length_cut_points.empty() && o.length_bins < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("length_bins ", o.length_bins, " must be >= 2 (or give length_cut_points)"));
  }
  for (size_t i = 0; i < o.length_cut_points.size(); ++i) {
    if (!std::isfinite(o.length_cut_points[i]) ||
        (i > 0 && !(o.length_cut_points[i] > o.length_cut_points[i - 1]))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "length_cut_points[", i, "] = ", o.length_cut_points[i],
          " (hint: cut points must be finite and strictly ascending)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<double> QuantileCutPoints(std::vector<double> values, int bins) {
  std::vector<double> cuts;
  if (values.empty() || bins < 2) return cuts;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  for (int j = 1; j < bins; ++j) {
    const double pos = static_cast<double>(n - 1) * j / bins;
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, n - 1);
    const double q = values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
    const double cut = std::ceil(q);
    if (cuts.empty() || cut > cuts.back()) cuts.push_back(cut);
  }
  return cuts;
}

absl::Status EmbeddingCentroid(const std::vector<const PromptSample*>& prompts,
                               std::vector<float>* mean, double* spread, int64_t* count) {
  mean->clear();
  *count = 0;
  if (spread != nullptr) *spread = 0;
  std::vector<double> sum;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<float>& e = prompts[i]->embedding;
    if (e.empty()) continue;
    if (sum.empty()) sum.assign(e.size(), 0.0);
    if (e.size() != sum.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt ", i, " has an embedding of dimension ", e.size(), ", earlier ones have ",
          sum.size(), " (hint: all embeddings must come from the same base model)"));
    }
    for (size_t d = 0; d < e.size(); ++d) {
      if (!std::isfinite(e[d])) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt ", i, " has a non-finite embedding value at index ", d));
      }
      sum[d] += e[d];
    }
    ++*count;
  }
  if (*count == 0) return absl::OkStatus();
  mean->resize(sum.size());
  double norm = 0;
  for (size_t d = 0; d < sum.size(); ++d) {
    (*mean)[d] = static_cast<float>(sum[d] / static_cast<double>(*count));
    norm += static_cast<double>((*mean)[d]) * (*mean)[d];
  }
  if (norm == 0) {
    return absl::InvalidArgumentError("the mean embedding is the zero vector (cosine undefined)");
  }
  if (spread == nullptr) return absl::OkStatus();
  double total = 0;
  for (const PromptSample* p : prompts) {
    if (p->embedding.empty()) continue;
    absl::StatusOr<double> d = CosineDistance(p->embedding, *mean);
    if (!d.ok()) return d.status();
    total += *d;
  }
  *spread = total / static_cast<double>(*count);
  return absl::OkStatus();
}

absl::StatusOr<DriftProfile> DriftProfile::Build(const std::vector<PromptSample>& prompts,
                                                 const DriftProfileOptions& options) {
  absl::Status valid = ValidateOptions(options);
  if (!valid.ok()) return valid;
  if (prompts.empty()) return absl::InvalidArgumentError("cannot build a drift profile from 0 prompts");
  DriftProfile profile;
  profile.options_ = options;
  profile.num_prompts_ = static_cast<int64_t>(prompts.size());

  std::unordered_map<int32_t, int64_t> counts;
  std::vector<double> lengths;
  lengths.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    for (int32_t id : prompts[i].token_ids) {
      if (id < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt ", i, " has a negative token id ", id));
      }
      ++counts[id];
    }
    profile.num_tokens_ += static_cast<int64_t>(prompts[i].token_ids.size());
    lengths.push_back(static_cast<double>(prompts[i].token_ids.size()));
  }
  if (profile.num_tokens_ == 0) {
    return absl::InvalidArgumentError("the reference prompts contain no tokens at all");
  }

  // Token distribution: top-k by (count desc, id asc) + "other".
  std::vector<std::pair<int32_t, int64_t>> by_count(counts.begin(), counts.end());
  std::sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  const size_t k = std::min(by_count.size(), static_cast<size_t>(options.top_k));
  double top_total = 0;
  for (size_t i = 0; i < k; ++i) {
    profile.top_token_ids_.push_back(by_count[i].first);
    profile.token_counts_.push_back(static_cast<double>(by_count[i].second));
    top_total += static_cast<double>(by_count[i].second);
  }
  profile.token_counts_.push_back(static_cast<double>(profile.num_tokens_) - top_total);
  profile.IndexTopTokens();

  // Rare tokens: known = count >= m; reference rate = Good-Turing estimate.
  int64_t low_count_tokens = 0;
  for (const auto& [id, c] : counts) {
    if (c >= options.rare_min_count) profile.known_token_ids_.push_back(id);
    if (c <= options.rare_min_count) low_count_tokens += c;
  }
  std::sort(profile.known_token_ids_.begin(), profile.known_token_ids_.end());
  profile.reference_rare_rate_ =
      static_cast<double>(low_count_tokens) / static_cast<double>(profile.num_tokens_);

  // Length histogram.
  profile.length_cut_points_ = options.length_cut_points.empty()
                                   ? QuantileCutPoints(lengths, options.length_bins)
                                   : options.length_cut_points;
  profile.length_counts_.assign(profile.length_cut_points_.size() + 1, 0.0);
  for (double len : lengths) profile.length_counts_[BinIndex(profile.length_cut_points_, len)] += 1;

  // Embedding centroid + spread.
  std::vector<const PromptSample*> ptrs;
  ptrs.reserve(prompts.size());
  for (const PromptSample& p : prompts) ptrs.push_back(&p);
  absl::Status emb = EmbeddingCentroid(ptrs, &profile.embedding_mean_, &profile.embedding_spread_,
                                       &profile.num_embeddings_);
  if (!emb.ok()) return emb;
  return profile;
}

void DriftProfile::IndexTopTokens() {
  top_index_.clear();
  for (size_t i = 0; i < top_token_ids_.size(); ++i) top_index_[top_token_ids_[i]] = static_cast<int>(i);
}

int DriftProfile::TokenBucket(int32_t token_id) const {
  auto it = top_index_.find(token_id);
  return it == top_index_.end() ? static_cast<int>(top_token_ids_.size()) : it->second;
}

int DriftProfile::LengthBin(size_t num_tokens) const {
  return BinIndex(length_cut_points_, static_cast<double>(num_tokens));
}

bool DriftProfile::IsKnownToken(int32_t token_id) const {
  return std::binary_search(known_token_ids_.begin(), known_token_ids_.end(), token_id);
}

std::string DriftProfile::ToJson() const {
  Json j;
  j["format"] = kFormatName;
  j["version"] = kFormatVersion;
  j["options"] = {{"top_k", options_.top_k},
                  {"length_bins", options_.length_bins},
                  {"rare_min_count", options_.rare_min_count}};
  j["num_prompts"] = num_prompts_;
  j["num_tokens"] = num_tokens_;
  j["tokens"] = {{"top_ids", top_token_ids_}, {"counts", token_counts_}};
  j["length"] = {{"cut_points", length_cut_points_}, {"counts", length_counts_}};
  j["rare"] = {{"known_ids", known_token_ids_}, {"reference_rate", reference_rare_rate_}};
  if (has_embedding()) {
    j["embedding"] = {{"dim", embedding_mean_.size()},
                      {"count", num_embeddings_},
                      {"mean", embedding_mean_},
                      {"spread", embedding_spread_}};
  } else {
    j["embedding"] = nullptr;
  }
  return j.dump();
}

absl::StatusOr<DriftProfile> DriftProfile::FromJson(absl::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("drift profile is not valid JSON");
  DriftProfile p;
  const char* field = "format";
  try {
    if (!j.is_object() || j.value("format", "") != kFormatName) {
      return absl::InvalidArgumentError(
          absl::StrCat("drift profile field 'format' is not \"", kFormatName, "\""));
    }
    field = "version";
    if (j.at("version").get<int>() != kFormatVersion) {
      return absl::InvalidArgumentError(absl::StrCat("drift profile version ",
                                                     j.at("version").dump(), " is not supported (expected ",
                                                     kFormatVersion, ")"));
    }
    field = "options";
    p.options_.top_k = j.at("options").at("top_k").get<int>();
    p.options_.length_bins = j.at("options").at("length_bins").get<int>();
    p.options_.rare_min_count = j.at("options").at("rare_min_count").get<int>();
    field = "num_prompts";
    p.num_prompts_ = j.at("num_prompts").get<int64_t>();
    field = "num_tokens";
    p.num_tokens_ = j.at("num_tokens").get<int64_t>();
    field = "tokens";
    p.top_token_ids_ = j.at("tokens").at("top_ids").get<std::vector<int32_t>>();
    p.token_counts_ = j.at("tokens").at("counts").get<std::vector<double>>();
    field = "length";
    p.length_cut_points_ = j.at("length").at("cut_points").get<std::vector<double>>();
    p.length_counts_ = j.at("length").at("counts").get<std::vector<double>>();
    field = "rare";
    p.known_token_ids_ = j.at("rare").at("known_ids").get<std::vector<int32_t>>();
    p.reference_rare_rate_ = j.at("rare").at("reference_rate").get<double>();
    field = "embedding";
    const Json& e = j.at("embedding");
    if (!e.is_null()) {
      p.embedding_mean_ = e.at("mean").get<std::vector<float>>();
      p.embedding_spread_ = e.at("spread").get<double>();
      p.num_embeddings_ = e.at("count").get<int64_t>();
      if (e.at("dim").get<size_t>() != p.embedding_mean_.size() || p.embedding_mean_.empty()) {
        return absl::InvalidArgumentError(
            "drift profile field 'embedding.mean' does not have 'embedding.dim' entries");
      }
    }
  } catch (const Json::exception& ex) {
    return absl::InvalidArgumentError(
        absl::StrCat("drift profile field '", field, "' is missing or malformed: ", ex.what()));
  }
  // Consistency checks.
  p.options_.length_cut_points = p.length_cut_points_;
  absl::Status valid = ValidateOptions(p.options_);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("drift profile: ", valid.message()));
  }
  if (p.token_counts_.size() != p.top_token_ids_.size() + 1 ||
      p.top_token_ids_.size() > static_cast<size_t>(p.options_.top_k)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "drift profile field 'tokens.counts' has ", p.token_counts_.size(),
        " entries, expected len(tokens.top_ids)+1 = ", p.top_token_ids_.size() + 1,
        " (with at most options.top_k ids)"));
  }
  if (p.length_counts_.size() != p.length_cut_points_.size() + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "drift profile field 'length.counts' has ", p.length_counts_.size(),
        " entries, expected len(length.cut_points)+1 = ", p.length_cut_points_.size() + 1));
  }
  for (const std::vector<double>* v : {&p.token_counts_, &p.length_counts_}) {
    for (double c : *v) {
      if (!std::isfinite(c) || c < 0) {
        return absl::InvalidArgumentError("drift profile has a negative or non-finite count");
      }
    }
  }
  if (!std::is_sorted(p.known_token_ids_.begin(), p.known_token_ids_.end())) {
    return absl::InvalidArgumentError("drift profile field 'rare.known_ids' is not sorted");
  }
  if (p.num_prompts_ < 1 || p.num_tokens_ < 1) {
    return absl::InvalidArgumentError("drift profile has no prompts or no tokens");
  }
  p.IndexTopTokens();
  return p;
}

absl::Status DriftProfile::Save(const std::string& path) const {
  return WriteFileAtomically(path, ToJson());
}

absl::StatusOr<DriftProfile> DriftProfile::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<DriftProfile> p = FromJson(*text);
  if (!p.ok()) return absl::Status(p.status().code(), absl::StrCat(path, ": ", p.status().message()));
  return p;
}

}  // namespace qlorad::monitor
