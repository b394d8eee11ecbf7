// The numbers behind the adapter CI gate (core/service/promotion_gate.h decides): two
// adapter versions' evaluation records compared on the same hold-out.
//
// Contract:
//  * Comparable records: both hold adapter results, share the baseline key (base model
//    fingerprint, hold-out checksum and settings: prompt format, scoring, example count,
//    label list), the headline metric and the example ids in the same order. Anything
//    else is FAILED_PRECONDITION naming what differs, with a hint.
//  * The delta is candidate − serving on the headline metric with the paired percentile
//    bootstrap of core/eval/bootstrap.h (the same index sample for both adapters in each
//    replicate; the records' own seed and resample count by default), so the interval
//    is reproducible on every machine.
//  * candidate_value / serving_value are the metric on the full hold-out (the values the
//    records report).
#ifndef QLORAD_CORE_EVAL_PROMOTION_COMPARISON_H_
#define QLORAD_CORE_EVAL_PROMOTION_COMPARISON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/eval/bootstrap.h"
#include "core/eval/evaluation_record.h"

namespace qlorad::eval {

struct PromotionComparison {
  std::string metric;  // the records' headline metric, e.g. "macro_f1"
  double candidate_value = 0;
  double serving_value = 0;
  ConfidenceInterval delta;  // candidate − serving: point, lower, upper
};

// OK when `candidate` can be compared with `serving` (see the contract).
absl::Status CheckComparable(const EvaluationRecord& candidate, const EvaluationRecord& serving);

absl::StatusOr<PromotionComparison> ComparePromotion(const EvaluationRecord& candidate,
                                                     const EvaluationRecord& serving,
                                                     const BootstrapOptions& options = {});

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_PROMOTION_COMPARISON_H_
