// Human review: a seeded random sample of hold-out items with both outputs side by
// side, exported as CSV (RFC 4180) and JSONL, and the reviewers' ratings imported back
// with inter-reviewer agreement.
//
// Contract:
//  * Sample size must be in [50, 100]; when the hold-out has fewer items, all are
//    taken (`sample.note` says so). Selection: a seeded Fisher–Yates shuffle
//    (SplitMix64), the first k kept in hold-out order.
//  * Non-blind columns: item_id,input,reference,baseline_output,adapter_output,
//    rating_baseline,rating_adapter,preference,comment (preference: baseline|adapter|tie).
//  * Blind columns: item_id,input,reference,output_a,output_b,rating_a,rating_b,
//    preference,comment (preference: A|B|tie). Which system is A is drawn per item from
//    the seed; the key ({item_id: {"A": "baseline"|"adapter", "B": ...}}) lives only in
//    ReviewSample::key — never in the exported files — and is stored in the evaluation
//    record, from which the import un-blinds the ratings.
//  * Import (one file per reviewer, CSV or JSONL with the same columns): every item_id
//    must belong to the sample (NOT_FOUND otherwise), appear at most once, and ratings
//    must be integers in [scale_min, scale_max] (INVALID_ARGUMENT naming the line and
//    column). A row with both ratings and the preference blank is "not rated" and
//    skipped; a half-filled row is an error.
//  * Agreement between reviewers on items both rated: percent agreement and Cohen's
//    kappa κ = (p_o − p_e)/(1 − p_e) (unweighted, sklearn's cohen_kappa_score) for the
//    ratings (each item × system is one judgement) and for the preference. With more
//    than two reviewers: the means over all reviewer pairs (mean pairwise kappa =
//    Light's kappa). κ is null when undefined (p_e = 1).
#ifndef QLORAD_CORE_EVAL_REVIEW_H_
#define QLORAD_CORE_EVAL_REVIEW_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/win_rate.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {

struct ReviewItem {
  std::string id;
  std::string input;
  std::string reference;
  std::string baseline_output;
  std::string adapter_output;
};

struct ReviewExportOptions {
  int sample_size = 50;
  uint64_t seed = 1;
  bool blind = false;
  int scale_min = 1;
  int scale_max = 5;
};

struct ReviewSample {
  std::vector<ReviewItem> items;  // hold-out order
  bool blind = false;
  uint64_t seed = 0;
  int scale_min = 1;
  int scale_max = 5;
  std::map<std::string, bool> a_is_adapter;  // blind key: item id -> output A is the adapter's
  std::string note;
};

absl::StatusOr<ReviewSample> SelectReviewSample(const std::vector<ReviewItem>& holdout,
                                                const ReviewExportOptions& options);

std::string ReviewSampleToCsv(const ReviewSample& sample);
std::string ReviewSampleToJsonl(const ReviewSample& sample);
// The blind key as JSON {item_id: {"A": ..., "B": ...}} (empty object when not blind).
nlohmann::json ReviewKeyToJson(const ReviewSample& sample);
// Sample description + key, for the evaluation record.
nlohmann::json ReviewSampleToJson(const ReviewSample& sample);
absl::StatusOr<ReviewSample> ReviewSampleFromJson(const nlohmann::json& j);

enum class Preference { kNone, kBaseline, kAdapter, kTie };
const char* PreferenceName(Preference p);

// One reviewer's un-blinded judgement of one item.
struct Rating {
  std::string item_id;
  std::string reviewer;
  int baseline_rating = 0;
  int adapter_rating = 0;
  Preference preference = Preference::kNone;
  std::string comment;
};

absl::StatusOr<std::vector<Rating>> ImportRatingsCsv(const ReviewSample& sample, const std::string& reviewer,
                                                     const std::string& csv_text);
absl::StatusOr<std::vector<Rating>> ImportRatingsJsonl(const ReviewSample& sample, const std::string& reviewer,
                                                       const std::string& jsonl_text);

struct Agreement {
  int64_t items = 0;  // judgements compared (summed over pairs)
  double percent_agreement = 0;
  std::optional<double> cohen_kappa;  // two reviewers; mean pairwise (Light's) for more
};

// Unweighted Cohen's kappa of two equally long label sequences (null when undefined).
std::optional<double> CohenKappa(const std::vector<std::string>& a, const std::vector<std::string>& b);

struct ReviewSummary {
  std::vector<std::string> reviewers;
  int64_t ratings = 0;
  double mean_baseline_rating = 0;
  double mean_adapter_rating = 0;
  int64_t prefer_adapter = 0;
  int64_t prefer_baseline = 0;
  int64_t ties = 0;
  std::optional<Agreement> rating_agreement;      // needs >= 2 reviewers
  std::optional<Agreement> preference_agreement;  // needs >= 2 reviewers with preferences
  WinRate win_rate;  // the adapter's: prefer_adapter / (prefer_adapter + prefer_baseline), ties apart
  std::vector<Rating> all;
};

// INVALID_ARGUMENT when a reviewer rated the same item twice across the inputs.
absl::StatusOr<ReviewSummary> SummariseReview(const std::vector<Rating>& ratings);
// ... plus "win_rate" (WinRateToJson: Wilson 95 % interval, ties excluded).
nlohmann::json ReviewSummaryToJson(const ReviewSummary& summary);

// The evaluation record's "review" section: {"sample": ReviewSampleToJson (incl. the
// blind key), "summary": ReviewSummaryToJson or null before ratings were imported}.
nlohmann::json ReviewRecordSection(const ReviewSample& sample, const ReviewSummary* summary);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_REVIEW_H_
