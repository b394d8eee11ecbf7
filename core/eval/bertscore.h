// BERTScore (Zhang et al., ICLR 2020) — only with a real encoder.
//
// Contract: BERTScore is reported ONLY when an encoder model directory (BERT/RoBERTa
// architecture, Hugging Face layout: config.json + weights) is configured AND an
// encoder backend (a TokenEmbedder) is supplied. Otherwise the result is
// `kUnavailable` with the reason; no other metric is ever reported under this name.
//
// With an embedder: per pair, candidate and reference token embeddings (the embedder
// returns contextual embeddings of the content tokens, without [CLS]/[SEP]/<s>/</s>),
// greedy matching on cosine similarity: P = mean over candidate tokens of the max
// similarity to any reference token, R = the same from the reference side,
// F = 2PR/(P+R). No idf weighting and no baseline rescaling (bert_score's defaults
// idf=False, rescale_with_baseline=False). Pairs where either side has no tokens
// score 0.
#ifndef QLORAD_CORE_EVAL_BERTSCORE_H_
#define QLORAD_CORE_EVAL_BERTSCORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {

// Implemented by the model side (core/model, torch); core/eval only consumes it.
class TokenEmbedder {
 public:
  virtual ~TokenEmbedder() = default;
  // One embedding per content token of `text`.
  virtual absl::StatusOr<std::vector<std::vector<float>>> EmbedTokens(const std::string& text) = 0;
  // The model's name/fingerprint for the record, e.g. "roberta-large layer 17".
  virtual std::string Describe() const = 0;
};

struct BertScoreConfig {
  std::string encoder_model_dir;  // empty: not configured
};

struct BertScoreResult {
  enum class Availability { kAvailable, kUnavailable };
  Availability availability = Availability::kUnavailable;
  std::string reason;   // why unavailable (empty when available)
  std::string encoder;  // TokenEmbedder::Describe() when available
  double precision = 0;  // means over pairs, valid only when available
  double recall = 0;
  double f1 = 0;
  std::vector<double> per_example_f1;

  bool available() const { return availability == Availability::kAvailable; }
};

BertScoreResult BertScoreUnavailable(std::string reason);

// See the contract above. `embedder` may be null. An embedder error makes the result
// unavailable with that error as the reason (never a partial score).
BertScoreResult ComputeBertScore(const BertScoreConfig& config, TokenEmbedder* embedder,
                                 const std::vector<std::string>& candidates,
                                 const std::vector<std::string>& references);

// Greedy-matching P/R/F of one pair of token-embedding lists.
void BertScorePair(const std::vector<std::vector<float>>& candidate, const std::vector<std::vector<float>>& reference,
                   double* precision, double* recall, double* f1);

// {"status":"available",...} or {"status":"unavailable","reason":...} (no numbers).
nlohmann::json BertScoreToJson(const BertScoreResult& r);
BertScoreResult BertScoreFromJson(const nlohmann::json& j);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_BERTSCORE_H_
