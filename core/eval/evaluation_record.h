// The evaluation record: baseline (base model, no adapter) and adapter results on the
// same hold-out, with the same prompt format and decoding settings, plus intervals.
//
// A record is tied to (base model fingerprint, hold-out checksum, settings): the
// baseline for a given triple is computed once and reused (BaselineKey), and an
// adapter's results are always stored next to the baseline for the same hold-out.
//
// BuildEvaluationRecord() turns per-example outputs (produced by the model side:
// log-likelihood label scoring or generation) into every metric of this module:
//  * classification: sklearn classification report + confusion matrix per system;
//    headline "macro_f1" (default), "accuracy" or "weighted_f1";
//  * generation: exact match, strict exact match, token F1, ROUGE-L (rouge-score,
//    optional stemmer), format adherence when a FormatChecker is given, BERTScore or
//    "unavailable"; headline "rouge_l_f" (default), "exact_match", "token_f1" or
//    "format_adherence";
//  * bootstrap 95 % intervals (percentile, paired, seeded) for each system's headline
//    and for adapter − baseline;
//  * a seeded sample of errors (adapter wrong first, then baseline-only errors).
#ifndef QLORAD_CORE_EVAL_EVALUATION_RECORD_H_
#define QLORAD_CORE_EVAL_EVALUATION_RECORD_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/bertscore.h"
#include "core/eval/bootstrap.h"
#include "core/eval/classification.h"
#include "core/eval/text_metrics.h"
#include "nlohmann/json.hpp"

namespace qlorad::eval {

enum class TaskKind { kClassification, kGeneration };
const char* TaskKindName(TaskKind kind);

struct GenerationMetrics {
  double exact_match = 0;
  double strict_exact_match = 0;
  double token_f1 = 0;
  double rouge_l_precision = 0;
  double rouge_l_recall = 0;
  double rouge_l_f = 0;
  bool rouge_use_stemmer = false;
  std::optional<double> format_adherence;  // absent when no format was defined
  std::string format_description;
  // Per-example values (for intervals and re-analysis).
  std::vector<double> per_example_exact_match;
  std::vector<double> per_example_token_f1;
  std::vector<double> per_example_rouge_l_f;
  std::vector<double> per_example_format;
};

struct SystemEvaluation {
  std::string name;                  // "baseline" or the adapter id
  std::vector<std::string> outputs;  // per-example predicted label / generated text
  std::optional<ClassificationReport> classification;
  std::optional<GenerationMetrics> generation;
  BertScoreResult bertscore;
  ConfidenceInterval headline;
};

struct ErrorExample {
  std::string id;
  std::string input;
  std::string reference;
  std::string baseline_output;
  std::string adapter_output;  // empty when there is no adapter
};

struct EvaluationRecord {
  std::string id;
  std::string created_at;  // RFC 3339 UTC
  TaskKind task = TaskKind::kClassification;
  std::string headline_metric;
  std::string dataset_id;
  std::string base_fingerprint;
  std::string holdout_checksum;
  nlohmann::json settings = nlohmann::json::object();  // prompt format, decoding, scoring mode
  std::string baseline_key;                            // BaselineKey(fingerprint, checksum, settings)
  std::vector<std::string> example_ids;
  std::vector<std::string> references;
  SystemEvaluation baseline;
  std::string adapter_id;  // empty: baseline-only record
  std::optional<SystemEvaluation> adapter;
  std::optional<ConfidenceInterval> delta;  // adapter − baseline on the headline metric
  std::vector<ErrorExample> error_sample;
  nlohmann::json review;  // ReviewSummary JSON after ratings were imported (null before)
};

struct EvaluationInputs {
  std::vector<std::string> ids;
  std::vector<std::string> inputs;      // prompts / texts (for the error sample)
  std::vector<std::string> references;  // gold labels / reference texts
  std::vector<std::string> baseline_outputs;
  std::optional<std::vector<std::string>> adapter_outputs;
};

struct RecordOptions {
  TaskKind task = TaskKind::kClassification;
  std::string headline_metric;        // empty: the task's default
  std::vector<std::string> labels;    // classification: explicit label list (empty: union)
  bool rouge_use_stemmer = true;
  const FormatChecker* format = nullptr;  // generation: optional format check
  BertScoreConfig bertscore;
  TokenEmbedder* embedder = nullptr;
  BootstrapOptions bootstrap;
  int error_sample_size = 20;
  uint64_t error_sample_seed = 7;
  std::string record_id;
  std::string created_at;  // empty: now
  std::string dataset_id;
  std::string base_fingerprint;
  std::string holdout_checksum;
  nlohmann::json settings = nlohmann::json::object();
  std::string adapter_id;
};

// SHA-256 hex of the canonical (fingerprint, checksum, settings) triple.
std::string BaselineKey(const std::string& base_fingerprint, const std::string& holdout_checksum,
                        const nlohmann::json& settings);

// The current time as RFC 3339 UTC with milliseconds, e.g. "2026-11-29T05:12:00.123Z".
std::string NowRfc3339();

// INVALID_ARGUMENT naming the field when sizes disagree, the headline is unknown for
// the task, or there are no examples.
absl::StatusOr<EvaluationRecord> BuildEvaluationRecord(const EvaluationInputs& inputs, const RecordOptions& options);

// The record's headline metric of `system` (one of `record`'s systems) on a resample of
// its examples, as the record's own intervals compute it. Classification: `labels` is
// the explicit label list (empty: the labels present in each resample, sklearn's
// default). INVALID_ARGUMENT when the system's outputs or metrics do not fit the record.
absl::StatusOr<IndexedMetric> HeadlineMetricOf(const EvaluationRecord& record, const SystemEvaluation& system,
                                               const std::vector<std::string>& labels);

// The value of a headline metric for a system (e.g. "macro_f1").
absl::StatusOr<double> HeadlineValue(const SystemEvaluation& system, const std::string& metric);

nlohmann::json EvaluationRecordToJson(const EvaluationRecord& record);
absl::StatusOr<EvaluationRecord> EvaluationRecordFromJson(const nlohmann::json& j);

}  // namespace qlorad::eval

#endif  // QLORAD_CORE_EVAL_EVALUATION_RECORD_H_
