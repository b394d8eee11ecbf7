#include "core/eval/bertscore.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace qlorad::eval {
namespace {

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
}

double GreedyMean(const std::vector<std::vector<float>>& from, const std::vector<std::vector<float>>& to) {
  double sum = 0;
  for (const auto& x : from) {
    double best = -1;
    for (const auto& y : to) best = std::max(best, Cosine(x, y));
    sum += best;
  }
  return sum / static_cast<double>(from.size());
}

}  // namespace

BertScoreResult BertScoreUnavailable(std::string reason) {
  BertScoreResult r;
  r.availability = BertScoreResult::Availability::kUnavailable;
  r.reason = std::move(reason);
  return r;
}

void BertScorePair(const std::vector<std::vector<float>>& candidate, const std::vector<std::vector<float>>& reference,
                   double* precision, double* recall, double* f1) {
  *precision = *recall = *f1 = 0;
  if (candidate.empty() || reference.empty()) return;
  *precision = GreedyMean(candidate, reference);
  *recall = GreedyMean(reference, candidate);
  *f1 = *precision + *recall > 0 ? 2 * *precision * *recall / (*precision + *recall) : 0.0;
}

BertScoreResult ComputeBertScore(const BertScoreConfig& config, TokenEmbedder* embedder,
                                 const std::vector<std::string>& candidates,
                                 const std::vector<std::string>& references) {
  if (config.encoder_model_dir.empty()) {
    return BertScoreUnavailable(
        "no encoder model directory configured (BERTScore needs a BERT/RoBERTa encoder in Hugging Face format)");
  }
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(config.encoder_model_dir) / "config.json", ec)) {
    return BertScoreUnavailable(absl::StrCat("encoder model directory '", config.encoder_model_dir,
                                             "' has no config.json (hint: point it at a Hugging Face model folder)"));
  }
  if (embedder == nullptr) {
    return BertScoreUnavailable(absl::StrCat("encoder model directory '", config.encoder_model_dir,
                                             "' is configured but no encoder backend was supplied"));
  }
  if (candidates.size() != references.size()) {
    return BertScoreUnavailable(absl::StrCat("candidates (", candidates.size(), ") and references (",
                                             references.size(), ") differ in number"));
  }
  if (candidates.empty()) return BertScoreUnavailable("no examples to score");
  BertScoreResult r;
  for (size_t i = 0; i < candidates.size(); ++i) {
    auto c = embedder->EmbedTokens(candidates[i]);
    if (!c.ok()) return BertScoreUnavailable(absl::StrCat("encoder failed on candidate ", i, ": ", c.status().ToString()));
    auto ref = embedder->EmbedTokens(references[i]);
    if (!ref.ok()) {
      return BertScoreUnavailable(absl::StrCat("encoder failed on reference ", i, ": ", ref.status().ToString()));
    }
    double p, rc, f;
    BertScorePair(*c, *ref, &p, &rc, &f);
    r.precision += p;
    r.recall += rc;
    r.f1 += f;
    r.per_example_f1.push_back(f);
  }
  const double n = static_cast<double>(candidates.size());
  r.precision /= n;
  r.recall /= n;
  r.f1 /= n;
  r.availability = BertScoreResult::Availability::kAvailable;
  r.encoder = embedder->Describe();
  return r;
}

nlohmann::json BertScoreToJson(const BertScoreResult& r) {
  if (!r.available()) return {{"status", "unavailable"}, {"reason", r.reason}};
  return {{"status", "available"}, {"encoder", r.encoder}, {"precision", r.precision},
          {"recall", r.recall},    {"f1", r.f1},           {"per_example_f1", r.per_example_f1}};
}

BertScoreResult BertScoreFromJson(const nlohmann::json& j) {
  if (j.value("status", "") != "available") return BertScoreUnavailable(j.value("reason", "unavailable"));
  BertScoreResult r;
  r.availability = BertScoreResult::Availability::kAvailable;
  r.encoder = j.value("encoder", "");
  r.precision = j.value("precision", 0.0);
  r.recall = j.value("recall", 0.0);
  r.f1 = j.value("f1", 0.0);
  r.per_example_f1 = j.value("per_example_f1", std::vector<double>{});
  return r;
}

}  // namespace qlorad::eval
