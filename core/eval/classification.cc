#include "core/eval/classification.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qlorad::eval {
namespace {

double SafeDiv(double num, double den) { return den == 0 ? 0.0 : num / den; }

absl::Status CheckInputs(const std::vector<std::string>& truth, const std::vector<std::string>& predicted,
                         const std::vector<std::string>& labels) {
  if (truth.size() != predicted.size()) {
    return absl::InvalidArgumentError(absl::StrCat("truth has ", truth.size(), " labels but predicted has ",
                                                   predicted.size(), " (hint: one prediction per example)"));
  }
  if (labels.empty()) return absl::InvalidArgumentError("labels: the label list is empty");
  std::set<std::string> seen;
  for (const std::string& l : labels) {
    if (!seen.insert(l).second) return absl::InvalidArgumentError(absl::StrCat("labels: duplicate label '", l, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> UniqueLabels(const std::vector<std::string>& truth,
                                      const std::vector<std::string>& predicted) {
  std::set<std::string> all(truth.begin(), truth.end());
  all.insert(predicted.begin(), predicted.end());
  return {all.begin(), all.end()};
}

absl::StatusOr<std::vector<std::vector<int64_t>>> ConfusionMatrix(const std::vector<std::string>& truth,
                                                                  const std::vector<std::string>& predicted,
                                                                  const std::vector<std::string>& labels) {
  if (absl::Status s = CheckInputs(truth, predicted, labels); !s.ok()) return s;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < labels.size(); ++i) index[labels[i]] = i;
  std::vector<std::vector<int64_t>> c(labels.size(), std::vector<int64_t>(labels.size(), 0));
  for (size_t k = 0; k < truth.size(); ++k) {
    auto t = index.find(truth[k]);
    auto p = index.find(predicted[k]);
    if (t == index.end() || p == index.end()) continue;
    ++c[t->second][p->second];
  }
  return c;
}

absl::StatusOr<ClassificationReport> ComputeClassificationReport(const std::vector<std::string>& truth,
                                                                 const std::vector<std::string>& predicted) {
  if (truth.empty()) return absl::InvalidArgumentError("no samples: truth and predicted are empty");
  return ComputeClassificationReport(truth, predicted, UniqueLabels(truth, predicted));
}

absl::StatusOr<ClassificationReport> ComputeClassificationReport(const std::vector<std::string>& truth,
                                                                 const std::vector<std::string>& predicted,
                                                                 const std::vector<std::string>& labels) {
  ClassificationReport r;
  auto confusion = ConfusionMatrix(truth, predicted, labels);
  if (!confusion.ok()) return confusion.status();
  r.labels = labels;
  r.confusion = *std::move(confusion);
  r.num_samples = static_cast<int64_t>(truth.size());
  const size_t k = labels.size();

  // tp/fp/fn from ALL samples (a prediction outside the label list still is a false
  // negative of its true class, as sklearn's multilabel_confusion_matrix with labels).
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < k; ++i) index[labels[i]] = i;
  std::vector<int64_t> tp(k, 0), pred_count(k, 0), true_count(k, 0);
  int64_t correct = 0;
  for (size_t s = 0; s < truth.size(); ++s) {
    auto t = index.find(truth[s]);
    auto p = index.find(predicted[s]);
    if (truth[s] == predicted[s]) ++correct;
    if (t != index.end()) ++true_count[t->second];
    if (p != index.end()) ++pred_count[p->second];
    if (t != index.end() && truth[s] == predicted[s]) ++tp[t->second];
  }
  r.accuracy = SafeDiv(static_cast<double>(correct), static_cast<double>(truth.size()));
  std::set<std::string> present(truth.begin(), truth.end());
  present.insert(predicted.begin(), predicted.end());
  r.accuracy_row = std::all_of(present.begin(), present.end(), [&](const std::string& l) { return index.count(l); });

  int64_t tp_sum = 0, pred_sum = 0, true_sum = 0;
  for (size_t i = 0; i < k; ++i) {
    ClassMetrics m;
    m.label = labels[i];
    m.support = true_count[i];
    const int64_t fp = pred_count[i] - tp[i];
    const int64_t fn = true_count[i] - tp[i];
    m.precision = SafeDiv(tp[i], pred_count[i]);
    m.recall = SafeDiv(tp[i], true_count[i]);
    m.f1 = SafeDiv(2.0 * tp[i], 2.0 * tp[i] + fp + fn);
    if (pred_count[i] == 0) r.ill_defined_precision.push_back(labels[i]);
    if (true_count[i] == 0) r.ill_defined_recall.push_back(labels[i]);
    if (2 * tp[i] + fp + fn == 0) r.ill_defined_f1.push_back(labels[i]);
    r.macro_avg.precision += m.precision / k;
    r.macro_avg.recall += m.recall / k;
    r.macro_avg.f1 += m.f1 / k;
    r.weighted_avg.precision += m.precision * m.support;
    r.weighted_avg.recall += m.recall * m.support;
    r.weighted_avg.f1 += m.f1 * m.support;
    tp_sum += tp[i];
    pred_sum += pred_count[i];
    true_sum += true_count[i];
    r.per_class.push_back(m);
  }
  r.macro_avg.support = r.weighted_avg.support = r.micro_avg.support = true_sum;
  r.weighted_avg.precision = SafeDiv(r.weighted_avg.precision, true_sum);
  r.weighted_avg.recall = SafeDiv(r.weighted_avg.recall, true_sum);
  r.weighted_avg.f1 = SafeDiv(r.weighted_avg.f1, true_sum);
  r.micro_avg.precision = SafeDiv(tp_sum, pred_sum);
  r.micro_avg.recall = SafeDiv(tp_sum, true_sum);
  r.micro_avg.f1 = SafeDiv(2.0 * tp_sum, static_cast<double>(pred_sum + true_sum));

  const char* kHint = " Use `zero_division` parameter to control this behavior.";
  if (!r.ill_defined_precision.empty()) {
    r.warnings.push_back(absl::StrCat("Precision is ill-defined and being set to 0.0 in labels with no predicted samples.",
                                      kHint, " Labels: ", absl::StrJoin(r.ill_defined_precision, ", ")));
  }
  if (!r.ill_defined_recall.empty()) {
    r.warnings.push_back(absl::StrCat("Recall is ill-defined and being set to 0.0 in labels with no true samples.",
                                      kHint, " Labels: ", absl::StrJoin(r.ill_defined_recall, ", ")));
  }
  if (!r.ill_defined_f1.empty()) {
    r.warnings.push_back(absl::StrCat("F-score is ill-defined and being set to 0.0 in labels with no true nor predicted samples.",
                                      kHint, " Labels: ", absl::StrJoin(r.ill_defined_f1, ", ")));
  }
  return r;
}

std::string FormatClassificationReport(const ClassificationReport& r, int digits) {
  size_t width = std::string("weighted avg").size();
  for (const auto& l : r.labels) width = std::max(width, l.size());
  width = std::max<size_t>(width, digits);
  auto row = [&](const std::string& name, double p, double rc, double f, int64_t s) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "%*s %9.*f %9.*f %9.*f %9lld\n", static_cast<int>(width), name.c_str(), digits, p,
                  digits, rc, digits, f, static_cast<long long>(s));
    return std::string(buf);
  };
  char head[256];
  std::snprintf(head, sizeof(head), "%*s %9s %9s %9s %9s\n\n", static_cast<int>(width), "", "precision", "recall",
                "f1-score", "support");
  std::string out = head;
  for (const auto& m : r.per_class) out += row(m.label, m.precision, m.recall, m.f1, m.support);
  out += "\n";
  if (r.accuracy_row) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "%*s %9s %9s %9.*f %9lld\n", static_cast<int>(width), "accuracy", "", "", digits,
                  r.accuracy, static_cast<long long>(r.micro_avg.support));
    out += buf;
  } else {
    out += row("micro avg", r.micro_avg.precision, r.micro_avg.recall, r.micro_avg.f1, r.micro_avg.support);
  }
  out += row("macro avg", r.macro_avg.precision, r.macro_avg.recall, r.macro_avg.f1, r.macro_avg.support);
  out += row("weighted avg", r.weighted_avg.precision, r.weighted_avg.recall, r.weighted_avg.f1, r.weighted_avg.support);
  return out;
}

namespace {
nlohmann::json AvgToJson(const AverageMetrics& a) {
  return {{"precision", a.precision}, {"recall", a.recall}, {"f1-score", a.f1}, {"support", a.support}};
}
AverageMetrics AvgFromJson(const nlohmann::json& j) {
  AverageMetrics a;
  a.precision = j.at("precision").get<double>();
  a.recall = j.at("recall").get<double>();
  a.f1 = j.at("f1-score").get<double>();
  a.support = j.at("support").get<int64_t>();
  return a;
}
}  // namespace

nlohmann::json ClassificationReportToJson(const ClassificationReport& r) {
  nlohmann::json per_class = nlohmann::json::array();
  for (const auto& m : r.per_class) {
    per_class.push_back({{"label", m.label},
                         {"precision", m.precision},
                         {"recall", m.recall},
                         {"f1-score", m.f1},
                         {"support", m.support}});
  }
  return {{"labels", r.labels},
          {"per_class", per_class},
          {"accuracy", r.accuracy},
          {"accuracy_row", r.accuracy_row},
          {"micro avg", AvgToJson(r.micro_avg)},
          {"macro avg", AvgToJson(r.macro_avg)},
          {"weighted avg", AvgToJson(r.weighted_avg)},
          {"confusion_matrix", r.confusion},
          {"num_samples", r.num_samples},
          {"ill_defined", {{"precision", r.ill_defined_precision},
                           {"recall", r.ill_defined_recall},
                           {"f1-score", r.ill_defined_f1}}},
          {"warnings", r.warnings}};
}

absl::StatusOr<ClassificationReport> ClassificationReportFromJson(const nlohmann::json& j) {
  try {
    ClassificationReport r;
    r.labels = j.at("labels").get<std::vector<std::string>>();
    for (const auto& m : j.at("per_class")) {
      r.per_class.push_back({m.at("label").get<std::string>(), m.at("precision").get<double>(),
                             m.at("recall").get<double>(), m.at("f1-score").get<double>(),
                             m.at("support").get<int64_t>()});
    }
    r.accuracy = j.at("accuracy").get<double>();
    r.accuracy_row = j.at("accuracy_row").get<bool>();
    r.micro_avg = AvgFromJson(j.at("micro avg"));
    r.macro_avg = AvgFromJson(j.at("macro avg"));
    r.weighted_avg = AvgFromJson(j.at("weighted avg"));
    r.confusion = j.at("confusion_matrix").get<std::vector<std::vector<int64_t>>>();
    r.num_samples = j.at("num_samples").get<int64_t>();
    r.ill_defined_precision = j.at("ill_defined").at("precision").get<std::vector<std::string>>();
    r.ill_defined_recall = j.at("ill_defined").at("recall").get<std::vector<std::string>>();
    r.ill_defined_f1 = j.at("ill_defined").at("f1-score").get<std::vector<std::string>>();
    r.warnings = j.at("warnings").get<std::vector<std::string>>();
    if (r.per_class.size() != r.labels.size() || r.confusion.size() != r.labels.size()) {
      return absl::InvalidArgumentError("classification report: per_class/confusion_matrix size != labels size");
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("classification report JSON: ", e.what()));
  }
}

}  // namespace qlorad::eval
