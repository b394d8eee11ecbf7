#include "core/eval/evaluation_record.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/eval/rouge.h"
#include "core/util/sha256.h"
#include "core/util/time_util.h"

namespace qlorad::eval {
namespace {

// Macro/weighted F1 on a resample (accuracy is a plain mean, see MakeHeadline), with sklearn's label semantics: an
// explicit list is kept; otherwise the labels present in the resample (truth ∪ pred).
struct CodedLabels {
  std::vector<int> truth, pred;  // -1: not in the label list
  size_t num_classes = 0;
  bool explicit_labels = false;
};

double ClassificationMetricOn(const CodedLabels& c, const std::vector<size_t>& idx, const std::string& metric) {
  std::vector<int64_t> tp(c.num_classes, 0), pc(c.num_classes, 0), tc(c.num_classes, 0);
  for (size_t i : idx) {
    const int t = c.truth[i], p = c.pred[i];
    if (t >= 0) ++tc[t];
    if (p >= 0) ++pc[p];
    if (t >= 0 && t == p) ++tp[t];
  }
  double sum = 0, weighted = 0;
  int64_t active = 0, support = 0;
  for (size_t k = 0; k < c.num_classes; ++k) {
    if (!c.explicit_labels && tc[k] == 0 && pc[k] == 0) continue;
    ++active;
    const int64_t den = pc[k] + tc[k];  // 2tp + fp + fn
    const double f1 = den == 0 ? 0.0 : 2.0 * tp[k] / static_cast<double>(den);
    sum += f1;
    weighted += f1 * tc[k];
    support += tc[k];
  }
  if (metric == "macro_f1") return active == 0 ? 0.0 : sum / active;
  return support == 0 ? 0.0 : weighted / support;  // weighted_f1
}

absl::StatusOr<GenerationMetrics> ComputeGeneration(const std::vector<std::string>& refs,
                                                    const std::vector<std::string>& outs, const RecordOptions& o) {
  GenerationMetrics g;
  g.rouge_use_stemmer = o.rouge_use_stemmer;
  const double n = static_cast<double>(refs.size());
  double rp = 0, rr = 0;
  for (size_t i = 0; i < refs.size(); ++i) {
    g.per_example_exact_match.push_back(ExactMatch(outs[i], refs[i]));
    g.strict_exact_match += StrictExactMatch(outs[i], refs[i]) / n;
    g.per_example_token_f1.push_back(TokenF1(outs[i], refs[i]));
    RougeScore r = RougeL(refs[i], outs[i], o.rouge_use_stemmer);
    g.per_example_rouge_l_f.push_back(r.fmeasure);
    rp += r.precision;
    rr += r.recall;
    if (o.format != nullptr) g.per_example_format.push_back(o.format->Matches(outs[i]) ? 1.0 : 0.0);
  }
  auto mean = [n](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / n;
  };
  g.exact_match = mean(g.per_example_exact_match);
  g.token_f1 = mean(g.per_example_token_f1);
  g.rouge_l_f = mean(g.per_example_rouge_l_f);
  g.rouge_l_precision = rp / n;
  g.rouge_l_recall = rr / n;
  if (o.format != nullptr) {
    g.format_adherence = mean(g.per_example_format);
    g.format_description = o.format->description();
  }
  return g;
}

absl::StatusOr<IndexedMetric> MakeHeadline(const EvaluationRecord& rec, const SystemEvaluation& sys,
                                           const RecordOptions& o) {
  const std::string& m = rec.headline_metric;
  if (rec.task == TaskKind::kClassification) {
    auto coded = std::make_shared<CodedLabels>();
    const auto& labels = o.labels.empty() ? sys.classification->labels : o.labels;
    std::map<std::string, int> index;
    for (size_t i = 0; i < labels.size(); ++i) index[labels[i]] = static_cast<int>(i);
    coded->num_classes = labels.size();
    coded->explicit_labels = !o.labels.empty();
    for (size_t i = 0; i < rec.references.size(); ++i) {
      auto t = index.find(rec.references[i]);
      auto p = index.find(sys.outputs[i]);
      coded->truth.push_back(t == index.end() ? -1 : t->second);
      coded->pred.push_back(p == index.end() ? -2 : p->second);  // -2 never equals a truth code
    }
    if (m == "accuracy") {
      std::vector<double> correct;
      for (size_t i = 0; i < rec.references.size(); ++i) correct.push_back(rec.references[i] == sys.outputs[i]);
      return MeanOf(correct);
    }
    return IndexedMetric([coded, m](const std::vector<size_t>& idx) { return ClassificationMetricOn(*coded, idx, m); });
  }
  const GenerationMetrics& g = *sys.generation;
  if (m == "exact_match") return MeanOf(g.per_example_exact_match);
  if (m == "token_f1") return MeanOf(g.per_example_token_f1);
  if (m == "rouge_l_f") return MeanOf(g.per_example_rouge_l_f);
  if (m == "format_adherence") {
    if (!g.format_adherence) return absl::InvalidArgumentError("headline_metric 'format_adherence' needs a format checker");
    return MeanOf(g.per_example_format);
  }
  return absl::InvalidArgumentError(absl::StrCat("headline_metric: unknown metric '", m, "'"));
}

absl::StatusOr<SystemEvaluation> EvaluateSystem(const std::string& name, const std::vector<std::string>& outputs,
                                                const EvaluationRecord& rec, const RecordOptions& o) {
  SystemEvaluation s;
  s.name = name;
  s.outputs = outputs;
  if (rec.task == TaskKind::kClassification) {
    auto report = o.labels.empty() ? ComputeClassificationReport(rec.references, outputs)
                                   : ComputeClassificationReport(rec.references, outputs, o.labels);
    if (!report.ok()) return report.status();
    s.classification = *std::move(report);
    s.bertscore = BertScoreUnavailable("not applicable to classification");
  } else {
    auto g = ComputeGeneration(rec.references, outputs, o);
    if (!g.ok()) return g.status();
    s.generation = *std::move(g);
    s.bertscore = ComputeBertScore(o.bertscore, o.embedder, outputs, rec.references);
  }
  return s;
}

bool IsError(const EvaluationRecord& rec, const SystemEvaluation& s, size_t i) {
  if (rec.task == TaskKind::kClassification) return s.outputs[i] != rec.references[i];
  return s.generation->per_example_exact_match[i] < 1.0;
}

}  // namespace

const char* TaskKindName(TaskKind kind) {
  return kind == TaskKind::kClassification ? "classification" : "generation";
}

std::string BaselineKey(const std::string& base_fingerprint, const std::string& holdout_checksum,
                        const nlohmann::json& settings) {
  nlohmann::json key = {{"base_fingerprint", base_fingerprint},
                        {"holdout_checksum", holdout_checksum},
                        {"settings", settings}};
  return Sha256Hex(key.dump());  // nlohmann's object keys are sorted: canonical
}

std::string NowRfc3339() { return NowUtcRfc3339(TimePrecision::kMilliseconds); }

absl::StatusOr<EvaluationRecord> BuildEvaluationRecord(const EvaluationInputs& in, const RecordOptions& o) {
  const size_t n = in.references.size();
  if (n == 0) return absl::InvalidArgumentError("references: no examples to evaluate");
  auto check = [n](const char* field, size_t size) -> absl::Status {
    if (size != n) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": has ", size, " entries but references has ", n, " (hint: one per hold-out example)"));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = check("ids", in.ids.size()); !s.ok()) return s;
  if (absl::Status s = check("inputs", in.inputs.size()); !s.ok()) return s;
  if (absl::Status s = check("baseline_outputs", in.baseline_outputs.size()); !s.ok()) return s;
  if (in.adapter_outputs) {
    if (absl::Status s = check("adapter_outputs", in.adapter_outputs->size()); !s.ok()) return s;
  }
  EvaluationRecord rec;
  rec.task = o.task;
  rec.headline_metric = o.headline_metric;
  if (rec.headline_metric.empty()) rec.headline_metric = o.task == TaskKind::kClassification ? "macro_f1" : "rouge_l_f";
  static const std::set<std::string> kClassMetrics = {"macro_f1", "accuracy", "weighted_f1"};
  static const std::set<std::string> kGenMetrics = {"rouge_l_f", "exact_match", "token_f1", "format_adherence"};
  const auto& allowed = o.task == TaskKind::kClassification ? kClassMetrics : kGenMetrics;
  if (!allowed.count(rec.headline_metric)) {
    return absl::InvalidArgumentError(absl::StrCat("headline_metric: '", rec.headline_metric, "' is not a ",
                                                   TaskKindName(o.task), " metric"));
  }
  rec.id = o.record_id;
  rec.created_at = o.created_at.empty() ? NowRfc3339() : o.created_at;
  rec.dataset_id = o.dataset_id;
  rec.base_fingerprint = o.base_fingerprint;
  rec.holdout_checksum = o.holdout_checksum;
  rec.settings = o.settings;
  rec.baseline_key = BaselineKey(o.base_fingerprint, o.holdout_checksum, o.settings);
  rec.example_ids = in.ids;
  rec.references = in.references;
  rec.adapter_id = o.adapter_id;

  auto baseline = EvaluateSystem("baseline", in.baseline_outputs, rec, o);
  if (!baseline.ok()) return baseline.status();
  rec.baseline = *std::move(baseline);
  auto base_metric = MakeHeadline(rec, rec.baseline, o);
  if (!base_metric.ok()) return base_metric.status();
  auto base_ci = BootstrapInterval(n, *base_metric, o.bootstrap);
  if (!base_ci.ok()) return base_ci.status();
  rec.baseline.headline = *base_ci;

  if (in.adapter_outputs) {
    auto adapter = EvaluateSystem(o.adapter_id.empty() ? "adapter" : o.adapter_id, *in.adapter_outputs, rec, o);
    if (!adapter.ok()) return adapter.status();
    rec.adapter = *std::move(adapter);
    auto adapter_metric = MakeHeadline(rec, *rec.adapter, o);
    if (!adapter_metric.ok()) return adapter_metric.status();
    auto adapter_ci = BootstrapInterval(n, *adapter_metric, o.bootstrap);
    if (!adapter_ci.ok()) return adapter_ci.status();
    rec.adapter->headline = *adapter_ci;
    auto delta = BootstrapDifference(n, *adapter_metric, *base_metric, o.bootstrap);
    if (!delta.ok()) return delta.status();
    rec.delta = *delta;
  }

  // Error sample: adapter errors first (or baseline errors without an adapter), then
  // baseline-only errors; each group shuffled with the seed, the pick kept in index order.
  std::vector<size_t> primary, secondary;
  for (size_t i = 0; i < n; ++i) {
    const bool adapter_wrong = rec.adapter && IsError(rec, *rec.adapter, i);
    const bool baseline_wrong = IsError(rec, rec.baseline, i);
    if (rec.adapter ? adapter_wrong : baseline_wrong) {
      primary.push_back(i);
    } else if (baseline_wrong) {
      secondary.push_back(i);
    }
  }
  SplitMix64 rng(o.error_sample_seed);
  auto shuffle = [&rng](std::vector<size_t>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.Uniform(i)]);
  };
  shuffle(primary);
  shuffle(secondary);
  std::vector<size_t> picked;
  for (size_t i : primary) {
    if (picked.size() < static_cast<size_t>(std::max(0, o.error_sample_size))) picked.push_back(i);
  }
  for (size_t i : secondary) {
    if (picked.size() < static_cast<size_t>(std::max(0, o.error_sample_size))) picked.push_back(i);
  }
  std::sort(picked.begin(), picked.end());
  for (size_t i : picked) {
    rec.error_sample.push_back({in.ids[i], in.inputs[i], in.references[i], in.baseline_outputs[i],
                                rec.adapter ? (*in.adapter_outputs)[i] : std::string()});
  }
  return rec;
}

absl::StatusOr<IndexedMetric> HeadlineMetricOf(const EvaluationRecord& record, const SystemEvaluation& system,
                                               const std::vector<std::string>& labels) {
  if (system.outputs.size() != record.references.size()) {
    return absl::InvalidArgumentError(absl::StrCat("system '", system.name, "': has ", system.outputs.size(),
                                                   " outputs but the record has ", record.references.size(), " examples"));
  }
  if (record.task == TaskKind::kClassification ? !system.classification : !system.generation) {
    return absl::InvalidArgumentError(absl::StrCat("system '", system.name, "': has no ", TaskKindName(record.task),
                                                   " metrics"));
  }
  if (system.generation) {
    const GenerationMetrics& g = *system.generation;
    for (size_t size : {g.per_example_exact_match.size(), g.per_example_token_f1.size(), g.per_example_rouge_l_f.size()})
      if (size != record.references.size())
        return absl::InvalidArgumentError(absl::StrCat("system '", system.name, "': per-example scores for ", size,
                                                       " of ", record.references.size(), " examples"));
    if (g.format_adherence && g.per_example_format.size() != record.references.size())
      return absl::InvalidArgumentError(absl::StrCat("system '", system.name, "': per-example format scores missing"));
  }
  RecordOptions options;
  options.labels = labels;
  return MakeHeadline(record, system, options);
}

absl::StatusOr<double> HeadlineValue(const SystemEvaluation& s, const std::string& metric) {
  if (s.classification) {
    if (metric == "macro_f1") return s.classification->macro_avg.f1;
    if (metric == "weighted_f1") return s.classification->weighted_avg.f1;
    if (metric == "accuracy") return s.classification->accuracy;
  }
  if (s.generation) {
    if (metric == "rouge_l_f") return s.generation->rouge_l_f;
    if (metric == "exact_match") return s.generation->exact_match;
    if (metric == "token_f1") return s.generation->token_f1;
    if (metric == "format_adherence" && s.generation->format_adherence) return *s.generation->format_adherence;
  }
  return absl::NotFoundError(absl::StrCat("metric '", metric, "' is not in the evaluation of ", s.name));
}

namespace {

nlohmann::json GenerationToJson(const GenerationMetrics& g) {
  nlohmann::json j = {{"exact_match", g.exact_match},
                      {"strict_exact_match", g.strict_exact_match},
                      {"token_f1", g.token_f1},
                      {"rouge_l", {{"precision", g.rouge_l_precision}, {"recall", g.rouge_l_recall},
                                   {"fmeasure", g.rouge_l_f}, {"use_stemmer", g.rouge_use_stemmer}}},
                      {"format_adherence", g.format_adherence ? nlohmann::json(*g.format_adherence) : nullptr},
                      {"format_description", g.format_description},
                      {"per_example", {{"exact_match", g.per_example_exact_match},
                                       {"token_f1", g.per_example_token_f1},
                                       {"rouge_l_f", g.per_example_rouge_l_f},
                                       {"format", g.per_example_format}}}};
  return j;
}

GenerationMetrics GenerationFromJson(const nlohmann::json& j) {
  GenerationMetrics g;
  g.exact_match = j.at("exact_match").get<double>();
  g.strict_exact_match = j.at("strict_exact_match").get<double>();
  g.token_f1 = j.at("token_f1").get<double>();
  g.rouge_l_precision = j.at("rouge_l").at("precision").get<double>();
  g.rouge_l_recall = j.at("rouge_l").at("recall").get<double>();
  g.rouge_l_f = j.at("rouge_l").at("fmeasure").get<double>();
  g.rouge_use_stemmer = j.at("rouge_l").at("use_stemmer").get<bool>();
  if (!j.at("format_adherence").is_null()) g.format_adherence = j.at("format_adherence").get<double>();
  g.format_description = j.at("format_description").get<std::string>();
  const auto& pe = j.at("per_example");
  g.per_example_exact_match = pe.at("exact_match").get<std::vector<double>>();
  g.per_example_token_f1 = pe.at("token_f1").get<std::vector<double>>();
  g.per_example_rouge_l_f = pe.at("rouge_l_f").get<std::vector<double>>();
  g.per_example_format = pe.at("format").get<std::vector<double>>();
  return g;
}

nlohmann::json SystemToJson(const SystemEvaluation& s) {
  nlohmann::json j = {{"name", s.name},
                      {"outputs", s.outputs},
                      {"headline", ConfidenceIntervalToJson(s.headline)},
                      {"bertscore", BertScoreToJson(s.bertscore)}};
  j["classification"] = s.classification ? ClassificationReportToJson(*s.classification) : nlohmann::json(nullptr);
  j["generation"] = s.generation ? GenerationToJson(*s.generation) : nlohmann::json(nullptr);
  return j;
}

absl::StatusOr<SystemEvaluation> SystemFromJson(const nlohmann::json& j) {
  SystemEvaluation s;
  s.name = j.at("name").get<std::string>();
  s.outputs = j.at("outputs").get<std::vector<std::string>>();
  s.headline = ConfidenceIntervalFromJson(j.at("headline"));
  s.bertscore = BertScoreFromJson(j.at("bertscore"));
  if (!j.at("classification").is_null()) {
    auto c = ClassificationReportFromJson(j.at("classification"));
    if (!c.ok()) return c.status();
    s.classification = *std::move(c);
  }
  if (!j.at("generation").is_null()) s.generation = GenerationFromJson(j.at("generation"));
  return s;
}

}  // namespace

nlohmann::json EvaluationRecordToJson(const EvaluationRecord& r) {
  nlohmann::json errors = nlohmann::json::array();
  for (const auto& e : r.error_sample) {
    errors.push_back({{"id", e.id}, {"input", e.input}, {"reference", e.reference},
                      {"baseline_output", e.baseline_output}, {"adapter_output", e.adapter_output}});
  }
  return {{"schema", "qlorad.evaluation_record/v1"},
          {"id", r.id},
          {"created_at", r.created_at},
          {"task", TaskKindName(r.task)},
          {"headline_metric", r.headline_metric},
          {"dataset_id", r.dataset_id},
          {"base_fingerprint", r.base_fingerprint},
          {"holdout_checksum", r.holdout_checksum},
          {"settings", r.settings},
          {"baseline_key", r.baseline_key},
          {"example_ids", r.example_ids},
          {"references", r.references},
          {"baseline", SystemToJson(r.baseline)},
          {"adapter_id", r.adapter_id},
          {"adapter", r.adapter ? SystemToJson(*r.adapter) : nlohmann::json(nullptr)},
          {"delta", r.delta ? ConfidenceIntervalToJson(*r.delta) : nlohmann::json(nullptr)},
          {"error_sample", errors},
          {"review", r.review}};
}

absl::StatusOr<EvaluationRecord> EvaluationRecordFromJson(const nlohmann::json& j) {
  try {
    if (j.value("schema", "") != "qlorad.evaluation_record/v1") {
      return absl::InvalidArgumentError("evaluation record: schema is not qlorad.evaluation_record/v1");
    }
    EvaluationRecord r;
    r.id = j.at("id").get<std::string>();
    r.created_at = j.at("created_at").get<std::string>();
    const std::string task = j.at("task").get<std::string>();
    if (task != "classification" && task != "generation") {
      return absl::InvalidArgumentError(absl::StrCat("evaluation record: unknown task '", task, "'"));
    }
    r.task = task == "classification" ? TaskKind::kClassification : TaskKind::kGeneration;
    r.headline_metric = j.at("headline_metric").get<std::string>();
    r.dataset_id = j.at("dataset_id").get<std::string>();
    r.base_fingerprint = j.at("base_fingerprint").get<std::string>();
    r.holdout_checksum = j.at("holdout_checksum").get<std::string>();
    r.settings = j.at("settings");
    r.baseline_key = j.at("baseline_key").get<std::string>();
    r.example_ids = j.at("example_ids").get<std::vector<std::string>>();
    r.references = j.at("references").get<std::vector<std::string>>();
    auto base = SystemFromJson(j.at("baseline"));
    if (!base.ok()) return base.status();
    r.baseline = *std::move(base);
    r.adapter_id = j.at("adapter_id").get<std::string>();
    if (!j.at("adapter").is_null()) {
      auto a = SystemFromJson(j.at("adapter"));
      if (!a.ok()) return a.status();
      r.adapter = *std::move(a);
    }
    if (!j.at("delta").is_null()) r.delta = ConfidenceIntervalFromJson(j.at("delta"));
    for (const auto& e : j.at("error_sample")) {
      r.error_sample.push_back({e.at("id").get<std::string>(), e.at("input").get<std::string>(),
                                e.at("reference").get<std::string>(), e.at("baseline_output").get<std::string>(),
                                e.at("adapter_output").get<std::string>()});
    }
    r.review = j.at("review");
    return r;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("evaluation record JSON: ", e.what()));
  }
}

}  // namespace qlorad::eval
