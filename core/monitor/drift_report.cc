#include "core/monitor/drift_report.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qlorad::monitor {

std::string DriftReport::ToJson() const {
  nlohmann::json j = {{"window_size", window_size},
                      {"window_tokens", window_tokens},
                      {"psi_length", psi_length},
                      {"js_tokens", js_tokens},
                      {"rare_token_rate", rare_token_rate},
                      {"reference_rare_token_rate", reference_rare_token_rate},
                      {"rare_token_rate_delta", rare_token_rate_delta},
                      {"band", std::string(DriftBandName(band))}};
  if (has_embedding_distance) {
    j["embedding_distance"] = embedding_distance;
  } else {
    j["embedding_distance"] = nullptr;
  }
  return j.dump();
}

absl::StatusOr<DriftReport> CompareToProfile(const DriftProfile& reference,
                                             const std::vector<const PromptSample*>& window) {
  if (window.empty()) return absl::FailedPreconditionError("drift window is empty");
  DriftReport report;
  report.window_size = static_cast<int64_t>(window.size());
  std::vector<double> token_hist(reference.NumTokenBuckets(), 0.0);
  std::vector<double> length_hist(reference.NumLengthBins(), 0.0);
  int64_t rare = 0;
  for (size_t i = 0; i < window.size(); ++i) {
    const std::vector<int32_t>& ids = window[i]->token_ids;
    for (int32_t id : ids) {
      if (id < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("window prompt ", i, " has a negative token id ", id));
      }
      token_hist[reference.TokenBucket(id)] += 1;
      if (!reference.IsKnownToken(id)) ++rare;
    }
    length_hist[reference.LengthBin(ids.size())] += 1;
    report.window_tokens += static_cast<int64_t>(ids.size());
  }
  if (report.window_tokens == 0) {
    return absl::FailedPreconditionError("drift window has prompts but no tokens");
  }
  absl::StatusOr<double> psi = PopulationStabilityIndex(reference.length_counts(), length_hist);
  if (!psi.ok()) return psi.status();
  absl::StatusOr<double> js = JensenShannonDistance(reference.token_counts(), token_hist);
  if (!js.ok()) return js.status();
  report.psi_length = *psi;
  report.js_tokens = *js;
  report.rare_token_rate = static_cast<double>(rare) / static_cast<double>(report.window_tokens);
  report.reference_rare_token_rate = reference.reference_rare_rate();
  report.rare_token_rate_delta = report.rare_token_rate - report.reference_rare_token_rate;
  report.band = MaxBand(BandOf(report.psi_length), BandOf(report.js_tokens));

  if (reference.has_embedding()) {
    std::vector<float> mean;
    int64_t count = 0;
    absl::Status st = EmbeddingCentroid(window, &mean, /*spread=*/nullptr, &count);
    if (!st.ok()) return st;
    if (count > 0) {
      if (mean.size() != reference.embedding_mean().size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "window embeddings have dimension ", mean.size(), ", the reference profile has ",
            reference.embedding_mean().size(), " (hint: different base model?)"));
      }
      absl::StatusOr<double> d = CosineDistance(mean, reference.embedding_mean());
      if (!d.ok()) return d.status();
      report.has_embedding_distance = true;
      report.embedding_distance = *d / std::max(reference.embedding_spread(), kMinEmbeddingSpread);
    }
  }
  return report;
}

absl::StatusOr<DriftReport> CompareToProfile(const DriftProfile& reference,
                                             const std::vector<PromptSample>& window) {
  std::vector<const PromptSample*> ptrs;
  ptrs.reserve(window.size());
  for (const PromptSample& p : window) ptrs.push_back(&p);
  return CompareToProfile(reference, ptrs);
}

}  // namespace qlorad::monitor
