// Classification metrics, exactly as scikit-learn's `classification_report` and
// `confusion_matrix` (sklearn.metrics, default arguments: zero_division="warn").
//
// Contract:
//  * Labels: the sorted union of the truth and prediction labels (sklearn's
//    `unique_labels`, std::string ordering = Python's str ordering for ASCII/UTF-8
//    byte order), or an explicit list given by the caller, used in that order.
//  * Per class k: tp = #(true k, pred k), fp = #(true != k, pred k),
//    fn = #(true k, pred != k); precision = tp/(tp+fp), recall = tp/(tp+fn),
//    F1 = 2tp/(2tp+fp+fn), support = #(true k).
//  * Zero division: a ratio with a zero denominator is 0.0 (sklearn's default
//    "warn" behaves as 0 and emits UndefinedMetricWarning). We do not print: each
//    such case is recorded in `warnings` with sklearn's wording, e.g.
//    "Precision is ill-defined and being set to 0.0 in labels with no predicted
//    samples." and the affected labels are in `ill_defined_precision` /
//    `ill_defined_recall` / `ill_defined_f1`.
//  * accuracy = #(true == pred) / n over ALL samples. sklearn prints the
//    "accuracy" row only when the label set covers every label present; otherwise it
//    prints "micro avg" instead. `accuracy_row` tells which one sklearn would show;
//    `micro_avg` is always filled (micro P/R/F over the label list).
//  * macro avg = unweighted mean of per-class P, R, F1 (F1 is the mean of the
//    per-class F1s, not the F1 of the mean P and R); weighted avg = mean weighted by
//    support (0 when the total support is 0, as sklearn's zero_division).
//  * Confusion C[i][j] = number of samples with true label labels[i] predicted as
//    labels[j]; samples whose true or predicted label is not in the list are ignored
//    (as sklearn with an explicit `labels`).
#ifndef QLORAD_CORE_EVAL_CLASSIFICATION_H_
#define QLORAD_CORE_EVAL_CLASSIFICATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {

struct ClassMetrics {
  std::string label;
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  int64_t support = 0;
};

struct AverageMetrics {
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  int64_t support = 0;
};

struct ClassificationReport {
  std::vector<std::string> labels;
  std::vector<ClassMetrics> per_class;  // in `labels` order
  double accuracy = 0;                  // over all samples
  bool accuracy_row = true;             // false: sklearn would print "micro avg"
  AverageMetrics micro_avg;
  AverageMetrics macro_avg;
  AverageMetrics weighted_avg;
  std::vector<std::vector<int64_t>> confusion;  // C[true][pred]
  int64_t num_samples = 0;
  std::vector<std::string> ill_defined_precision;
  std::vector<std::string> ill_defined_recall;
  std::vector<std::string> ill_defined_f1;
  std::vector<std::string> warnings;  // sklearn's UndefinedMetricWarning texts
};

// Sorted union of the labels in `truth` and `predicted` (sklearn's unique_labels).
std::vector<std::string> UniqueLabels(const std::vector<std::string>& truth,
                                      const std::vector<std::string>& predicted);

// Confusion matrix over `labels` (C[i][j] = true labels[i], predicted labels[j]).
// INVALID_ARGUMENT when sizes differ, `labels` is empty or has duplicates.
absl::StatusOr<std::vector<std::vector<int64_t>>> ConfusionMatrix(const std::vector<std::string>& truth,
                                                                  const std::vector<std::string>& predicted,
                                                                  const std::vector<std::string>& labels);

// The report with labels = UniqueLabels(truth, predicted).
absl::StatusOr<ClassificationReport> ComputeClassificationReport(const std::vector<std::string>& truth,
                                                                 const std::vector<std::string>& predicted);
// The report over an explicit label list (order kept).
absl::StatusOr<ClassificationReport> ComputeClassificationReport(const std::vector<std::string>& truth,
                                                                 const std::vector<std::string>& predicted,
                                                                 const std::vector<std::string>& labels);

// sklearn's text layout (digits=2), for logs and the CLI.
std::string FormatClassificationReport(const ClassificationReport& report, int digits = 2);

nlohmann::json ClassificationReportToJson(const ClassificationReport& report);
absl::StatusOr<ClassificationReport> ClassificationReportFromJson(const nlohmann::json& j);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_CLASSIFICATION_H_
