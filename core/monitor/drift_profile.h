// DriftProfile: the reference picture of an adapter's training prompts, stored
// with the adapter and compared against windows of live prompts.
//
// Prompts are token-id sequences (whatever tokenizer the base model uses) plus
// an optional embedding per prompt (e.g. the base model's mean-pooled last
// hidden state, computed by the caller). The profile holds, per design.md
// section 4 and issue 10:
//
// * Token distribution: the reference's `top_k` most frequent token ids (ties
//   broken by smaller id) with their counts, plus ONE "other" bucket for every
//   other token. A window is bucketed the same way (its tokens outside the
//   reference top-k go to "other"), giving k+1 counts for the JS distance.
//   Chosen over hashed buckets because the buckets stay interpretable (a token
//   id) and the "other" mass is itself a drift signal.
// * Prompt-length histogram (length = number of token ids): interior cut
//   points c_1 < ... < c_m stored in the profile, bins (-inf,c_1), [c_1,c_2),
//   ..., [c_m,+inf) (see BinIndex). By default the cut points are the distinct
//   values of ceil(Q(j/B)), j = 1..B-1, Q = the reference length quantile with
//   linear interpolation (numpy's default), B = `length_bins`; or fixed cut
//   points given in the options. Windows are binned with the STORED points.
// * Rare-token rate: a token id is "known" when it occurs at least
//   `rare_min_count` (m) times in the reference; a window's rare rate is the
//   fraction of its tokens that are not known. The reference's own rate is the
//   Good-Turing estimate of that probability for unseen prompts:
//   (tokens whose id occurs <= m times in the reference) / (reference tokens).
//   (For m = 1 this is the classic N1/N mass of unseen tokens.)
// * Embedding: mean of the prompts' embeddings (those that have one; all must
//   share one dimension) and the spread = mean cosine distance of each
//   reference embedding to that mean. Absent when no prompt had an embedding.
//
// A profile is immutable once built; share it as shared_ptr<const DriftProfile>.
#ifndef QLORAD_CORE_MONITOR_DRIFT_PROFILE_H_
#define QLORAD_CORE_MONITOR_DRIFT_PROFILE_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qlorad::monitor {

// One prompt as the monitor sees it. `embedding` empty = none supplied.
struct PromptSample {
  std::vector<int32_t> token_ids;
  std::vector<float> embedding;
};

struct DriftProfileOptions {
  // Token buckets besides "other"; >= 1. The JS distance of an in-distribution
  // window is not 0 but a sampling-noise floor growing like
  // sqrt(top_k / window tokens): on the sentiment scenario (500-prompt windows,
  // ~7000 tokens) it measured 0.031 / 0.047 / 0.067 / 0.094 for k = 32 / 64 /
  // 128 / 256, while shifted traffic measured 0.22-0.34 (SOTU) and 0.34-0.51
  // (spam). 128 keeps the floor well under the 0.1 band with short windows;
  // raise it only with windows of many more tokens.
  int top_k = 128;
  int length_bins = 10;   // quantile bins when length_cut_points is empty; >= 2
  std::vector<double> length_cut_points;  // strictly ascending; empty = quantiles
  int rare_min_count = 2;  // "known" token: >= this many reference occurrences; >= 1
};

class DriftProfile {
 public:
  static constexpr int kFormatVersion = 1;

  // Builds the profile. INVALID_ARGUMENT (naming the prompt index) on no
  // prompts, no tokens at all, a negative token id, embeddings of differing
  // dimension or with non-finite values, or invalid options.
  static absl::StatusOr<DriftProfile> Build(const std::vector<PromptSample>& prompts,
                                            const DriftProfileOptions& options = {});

  // JSON text (format "qlorad.drift_profile", version kFormatVersion).
  std::string ToJson() const;
  // Parses and validates; INVALID_ARGUMENT naming the offending field.
  static absl::StatusOr<DriftProfile> FromJson(absl::string_view text);
  // File helpers (atomic write; NOT_FOUND / INVALID_ARGUMENT naming the path).
  absl::Status Save(const std::string& path) const;
  static absl::StatusOr<DriftProfile> Load(const std::string& path);

  // --- Binning used for windows (identical to the reference's) ---
  // Bucket of a token: index into top_token_ids(), or top_token_ids().size()
  // for "other".
  int TokenBucket(int32_t token_id) const;
  int NumTokenBuckets() const { return static_cast<int>(top_token_ids_.size()) + 1; }
  int LengthBin(size_t num_tokens) const;
  int NumLengthBins() const { return static_cast<int>(length_cut_points_.size()) + 1; }
  bool IsKnownToken(int32_t token_id) const;

  // --- Reference contents ---
  int64_t num_prompts() const { return num_prompts_; }
  int64_t num_tokens() const { return num_tokens_; }
  const DriftProfileOptions& options() const { return options_; }
  const std::vector<int32_t>& top_token_ids() const { return top_token_ids_; }
  // Counts per bucket, "other" last (size NumTokenBuckets()).
  const std::vector<double>& token_counts() const { return token_counts_; }
  const std::vector<double>& length_cut_points() const { return length_cut_points_; }
  const std::vector<double>& length_counts() const { return length_counts_; }
  const std::vector<int32_t>& known_token_ids() const { return known_token_ids_; }  // sorted
  double reference_rare_rate() const { return reference_rare_rate_; }
  bool has_embedding() const { return !embedding_mean_.empty(); }
  const std::vector<float>& embedding_mean() const { return embedding_mean_; }
  double embedding_spread() const { return embedding_spread_; }
  int64_t num_embeddings() const { return num_embeddings_; }

 private:
  DriftProfile() = default;
  void IndexTopTokens();

  DriftProfileOptions options_;
  int64_t num_prompts_ = 0;
  int64_t num_tokens_ = 0;
  std::vector<int32_t> top_token_ids_;
  std::vector<double> token_counts_;
  std::unordered_map<int32_t, int> top_index_;
  std::vector<double> length_cut_points_;
  std::vector<double> length_counts_;
  std::vector<int32_t> known_token_ids_;
  double reference_rare_rate_ = 0;
  std::vector<float> embedding_mean_;
  double embedding_spread_ = 0;
  int64_t num_embeddings_ = 0;
};

// The quantile cut points described above, for integer lengths (exposed for
// tests and the Python reference). Empty input -> empty result.
std::vector<double> QuantileCutPoints(std::vector<double> values, int bins);

// Mean of the non-empty embeddings and their mean cosine distance to it.
// INVALID_ARGUMENT on mixed dimensions / non-finite values / a zero-norm mean.
// `count` receives the number of embeddings used (0 -> mean empty, OK).
absl::Status EmbeddingCentroid(const std::vector<const PromptSample*>& prompts,
                               std::vector<float>* mean, double* spread, int64_t* count);

}  // namespace qlorad::monitor

#endif  // QLORAD_CORE_MONITOR_DRIFT_PROFILE_H_
