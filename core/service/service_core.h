// ServiceCore: everything the daemon does, behind one torch-free, gRPC-free interface
// (the front end in server/ sees core only through this header, as Triton's front ends
// see its core). It owns the state directory, the SQLite store, the serving engine with
// the resident base model, the training job queue and its worker threads.
//
// State directory layout:
//   <state>/qlorad.db                 SQLite (WAL): datasets, jobs, job events, adapters,
//                                     aliases, lifecycle, approvals, evaluations, audit log
//   <state>/datasets/<id>/            immutable dataset splits + manifest (core/data)
//   <state>/uploads/                  upload and export staging (removed after use)
//   <state>/jobs/<job_id>/checkpoints checkpoints of a training job
//   <state>/adapters/<name>/<version> PEFT adapter + training_run.json
//   <state>/evaluations/<id>/         evaluation.json + report.html
//
// Restart recovery (Start): jobs found 'running' are re-queued and resume from their last
// checkpoint; queued jobs stay queued; adapters marked loaded are loaded again.
// Errors are absl::Status codes the front end maps to gRPC in one place.
#ifndef QLORAD_CORE_SERVICE_SERVICE_CORE_H_
#define QLORAD_CORE_SERVICE_SERVICE_CORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/constrain/constraint_spec.h"
#include "core/serve/generation_limits.h"
#include "core/train/training_options.h"
#include "nlohmann/json.hpp"

namespace qlorad::service {

struct CoreOptions {
  std::string state_dir;
  std::string base_model_dir;
  std::string base_model_name;      // what clients call it; default: the directory's basename
  std::string device = "auto";      // cpu | cuda:N | auto
  std::string serve_quantize = "none";
  std::string adapter_factors = "compute";  // serve::EngineOptions::adapter_factors
  int training_workers = 1;         // concurrent training jobs (at least one per training device)
  // Devices training jobs are placed on (--devices); empty = {device}. A job asking for N
  // gets N free ones (data parallel, one rank each) or waits; "cpu" may repeat (ranks on CPU).
  std::vector<std::string> training_devices;
  double collective_timeout_seconds = 300;  // a rank silent this long fails a multi-device job
  int64_t max_queued_jobs = 64;
  int64_t max_prompt_tokens = 2048;
  int64_t max_new_tokens = serve::kDefaultMaxNewTokensLimit;
  int64_t max_waiting_requests = 4096;
  int64_t kv_cache_mb = 256;           // paged KV cache budget of the serving engine
  int64_t max_batch = 64;              // sequences decoded together (continuous batching)
  int64_t prefill_chunk_tokens = 256;  // prompt tokens per engine step (chunked prefill)
  int64_t max_resident_adapters = 64;  // LRU bound of adapters on the compute device
  int64_t checkpoint_every_steps = 10;
  // A write that finds the database locked by another process waits db_busy_timeout_ms,
  // db_busy_attempts times, then fails UNAVAILABLE naming the database (store.h BusyPolicy).
  int64_t db_busy_timeout_ms = 5000;
  int64_t db_busy_attempts = 3;
  bool require_approval = true;     // deployment policy: promote needs an approved adapter
  int64_t drift_window_prompts = 500;  // newest prompts per adapter compared with its training profile
  double drift_window_seconds = 0;     // > 0: also drop prompts older than this
  // ImportAdapter reads only below this directory (symlinks resolved); "" = ImportAdapter off.
  std::string import_root;
  int64_t max_adapter_upload_bytes = 2048ll << 20;  // sum of an UploadAdapter's declared file sizes
  double promotion_margin = 0.05;  // the CI gate: refuse when the lower bound of (candidate - serving) < -margin
};

// One adapter's drift of recent prompts against its training prompts (core/monitor).
struct DriftInfo {
  std::string adapter_id;
  int64_t window_prompts = 0, window_tokens = 0;
  double psi_length = 0, js_tokens = 0, rare_token_rate_delta = 0;
  bool has_embedding_distance = false;
  double embedding_distance = 0;
  int band = 0;  // 0 stable, 1 moderate, 2 significant
  double compute_seconds = 0;
};

struct Page {
  int64_t page_size = 50;  // 1..1000
  std::string page_token;  // opaque; "" = first page
};

struct DatasetUpload {
  std::string dataset_id;
  std::string source_path;  // a file the front end staged under uploads/
  std::string format = "auto";  // auto | alpaca | chat | prompt_completion | classification | preference
  bool csv = false;
  double holdout_fraction = 0.15;
  uint64_t seed = 42;
  bool allow_small_dataset = false;
  bool anonymize_pii = true;
  std::string actor;
};

struct DatasetInfo {
  std::string id, created_at, format, train_sha256, holdout_sha256;
  int64_t train_examples = 0, holdout_examples = 0;
  nlohmann::json validation_report, pii_report, manifest;
};

struct JobSpec {
  std::string base_model;    // must name the resident base ("" = it)
  std::string adapter_name;  // [a-z0-9][a-z0-9._-]*; the version is assigned
  int64_t priority = 0;
  int64_t devices = 1;       // training devices (data-parallel ranks); <= the daemon's
  TrainingOptions training;  // dataset, quantize, LoRA config, hyperparameters (stored as spec_json)
};

struct JobInfo {
  std::string id, status, created_at, started_at, finished_at, error, adapter_id, actor;
  int64_t priority = 0;
  nlohmann::json spec, progress;
  std::vector<std::string> devices;  // the devices a running job holds (device slots, see DeviceSlotNames)
};

struct JobEvent {
  int64_t seq = 0;
  std::string at;
  nlohmann::json event;  // {"type": status|progress|checkpoint|error, ...}
};

struct AdapterInfo {
  std::string id, name, job_id, path, base_fingerprint, dataset_id, created_at, state, evaluation_id;
  int64_t version = 0;
  bool loaded = false;
  std::vector<std::string> aliases;
  std::string residency = "";  // device | host | disk; "" when not loaded
  bool pinned = false;
  int64_t placements = 0, evictions = 0;
  // Why the adapter's files cannot be loaded, as found at start (restart recovery checks
  // every stored adapter) or by the last failed reload; "" when none is known. Cleared by
  // a successful load.
  std::string load_error = "";
};

// A stored adapter whose files failed the start-up check or reload (AdapterInfo::load_error).
struct UnloadableAdapter {
  std::string id, reason;
};

// One file of an adapter upload, as its header declares it.
struct AdapterFileSpec {
  std::string name;    // adapter_config.json | adapter_model.safetensors | training_run.json | README.md
  int64_t size = 0;    // bytes
  std::string sha256;  // 64 hex digits
};

struct AdapterUpload {
  std::string name;  // the adapter name; the version is assigned
  bool allow_base_mismatch = false;
  std::vector<AdapterFileSpec> files;
  std::string staging_dir;  // from BeginAdapterUpload: the front end writes the files here
  std::string actor;
};

struct AdapterExportRequest {
  std::string adapter;         // id or alias
  std::string format = "peft";  // peft | gguf
  std::string type;            // gguf: f32 (default) | f16 | q8_0 | q4_0
  bool merge = false;          // gguf: the base with the adapter merged in
  std::string actor;
};

struct AdapterExport {
  std::string dir;                 // where the files are
  std::vector<std::string> files;  // file names inside `dir`, in streaming order
  bool temporary = false;          // `dir` is scratch space the caller removes after streaming
};

struct DecisionInput {
  std::string actor, note, risk_class = "minimal", documentation_ref;
  // The evidence the decider saw, recorded with the decision in the audit entry:
  // evaluation ids and the review summary shown (JSON; null when none).
  std::vector<std::string> evidence_evaluation_ids;
  nlohmann::json evidence_review_summary;
};

// The adapter CI gate (Promote): promoting `candidate` onto an alias that serves another
// version needs an evaluation of the candidate on the same hold-out with the same settings
// (dataset, hold-out checksum, scoring, max_examples) as the serving version's latest one;
// it is refused when the 95 % paired-bootstrap interval of (candidate - serving) on the
// primary metric has its lower bound below -margin (CoreOptions::promotion_margin), unless
// an override reason is given (audited with the numbers).
struct PromotionCheck {
  bool applies = false;     // the alias serves another version that has an evaluation
  bool passed = true;       // applies == false passes
  bool overridden = false;  // refused by the numbers, promoted on an override reason
  std::string candidate_id, serving_id, dataset_id, metric;
  std::string candidate_evaluation_id, serving_evaluation_id;
  double candidate_value = 0, serving_value = 0, delta = 0, delta_low = 0, delta_high = 0, margin = 0;
  std::string message;  // one line naming both metrics and the interval (or why the gate does not apply)
};

struct PromoteInput {
  std::string adapter;  // id or alias
  std::string alias;
  std::string actor;
  std::string override_reason;  // non-empty: promote even when the gate refuses (audited)
};

struct PromoteResult {
  AdapterInfo adapter;
  PromotionCheck gate;
};

// Interactive review (the review console; the same calls over gRPC). A reviewer works
// on an evaluation's exported review sample; judgements are saved one item at a time
// (resumable) and become part of the stored review summary when the reviewer submits.
struct ReviewQueueEntry {
  std::string evaluation_id, adapter_id, dataset_id, created_at;
  int64_t items = 0;
  bool blind = false;
  int64_t rated_by_reviewer = 0;  // items the asking reviewer has judged (saved or submitted)
  bool submitted_by_reviewer = false;
  std::vector<std::string> submitted_reviewers;
};

// One item as a reviewer sees it. Blind samples: A/B per the sample's key, and
// label_a/label_b stay "" until this reviewer has submitted; otherwise A = baseline,
// B = adapter and the labels are "baseline"/"adapter".
struct ReviewItemView {
  std::string item_id, input, reference, output_a, output_b, label_a, label_b;
  int rating_a = 0, rating_b = 0;  // this reviewer's saved ratings; 0 = not rated
  std::string preference;          // "" | A | B | tie
  std::string comment;
};

struct ReviewSessionInfo {
  std::string evaluation_id, adapter_id, reviewer;
  bool blind = false, submitted = false;
  int scale_min = 1, scale_max = 5;
  std::vector<ReviewItemView> items;
};

struct ItemJudgement {
  std::string item_id;
  int rating_a = 0, rating_b = 0;  // in [scale_min, scale_max]
  std::string preference;          // A | B | tie
  std::string comment;
};

using serve::kDefaultMaxNewTokens;  // when a request leaves max_new_tokens unset

struct ChatTurn {
  std::string role;  // system | user | assistant
  std::string content;
};

struct GenerateInput {
  std::string adapter;  // id, alias, or "" for the base
  std::string prompt, input;
  bool raw_prompt = false;
  // A conversation instead of `prompt`: rendered with the prompt format the adapter
  // was trained with (its run record), else the base model's, plus the generation prompt.
  std::vector<ChatTurn> messages;
  int64_t max_new_tokens = kDefaultMaxNewTokens;  // 0 = as many as fit in the context (up to --max-new-tokens)
  double temperature = 0, top_p = 1;
  int64_t top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;          // stop strings (at most 4)
  constrain::ConstraintSpec constraint;  // structured output (JSON schema, json_object, choice, regex)
  int64_t top_logprobs = -1;             // >= 0: log-probability of each token and the top N alternatives
};

struct TokenLogprobInfo {
  std::string token;  // the token's text (as it adds to the output)
  double logprob = 0;
  std::vector<std::pair<std::string, double>> top;
};

struct GenerateOutput {
  std::string adapter_id;  // what the adapter reference resolved to
  std::string text, finish_reason;
  std::vector<int64_t> tokens;
  std::vector<TokenLogprobInfo> logprobs;  // when GenerateInput::top_logprobs >= 0
  int64_t prompt_tokens = 0;
  double time_to_first_token_seconds = 0, total_seconds = 0;
};
using TextPieceCallback = std::function<bool(const std::string& piece, int64_t token)>;

struct ClassifyOutput {
  std::string adapter_id, predicted;
  std::vector<std::string> labels;
  std::vector<double> log_likelihoods;
};

struct EvaluationInput {
  std::string dataset_id;
  std::string adapter;  // "" = baseline only
  int64_t max_examples = 0;  // 0 = the whole hold-out
  std::string actor;
  // Classification: log_likelihood (default; each label's log-likelihood), constrained
  // (greedy decoding restricted to the labels) or generation (free greedy decoding, the
  // answer matched against the labels).
  std::string scoring = "log_likelihood";
};

struct EvaluationInfo {
  std::string id, dataset_id, adapter_id, created_at, headline_metric, report_path;
  double baseline_value = 0, adapter_value = 0, delta_low = 0, delta_high = 0;
  bool has_adapter = false;
  nlohmann::json record;
};

struct ReviewExportInput {
  std::string evaluation_id;
  int sample_size = 50;  // 50..100 (all items when the hold-out has fewer)
  uint64_t seed = 1;
  bool blind = false;    // outputs as A/B; the key stays on the server
  std::string actor;
};

struct ReviewExport {
  std::string csv, jsonl, note;
  int64_t items = 0;
  bool blind = false;
};

struct ReviewerFile {
  std::string reviewer;
  std::string format = "csv";  // csv | jsonl
  std::string content;
};

// Counters and levels for the metrics exporter.
struct CoreStats {
  // Adapter placements on the compute device (explicit loads and on-demand reloads),
  // failures, explicit unloads and LRU evictions: all-time totals.
  int64_t adapter_loads = 0, adapter_load_failures = 0, adapter_unloads = 0, adapter_evictions = 0;
  std::vector<double> adapter_load_seconds;  // placement durations since the previous Stats() call
  int64_t requests_running = 0;              // sequences in the running batch
  int64_t requests_waiting = 0;              // queued for admission to the batch
  int64_t requests_in_flight = 0;            // every admitted inference request not finished
  int64_t kv_blocks_used = 0, kv_blocks_reserved = 0, kv_blocks_total = 0;
  std::map<std::string, int64_t> engine_bytes;  // weights | kv_cache | adapters -> bytes on the compute device
  std::string device;                           // the serving engine's compute device ("cpu", "cuda:0")
  int64_t device_memory_used = -1, device_memory_total = -1;  // accelerator only; -1 = none
  std::vector<int64_t> batch_sizes;          // sequences per engine step since the previous Stats() call
  int64_t adapters_registered = 0;           // adapter versions in the store
  std::map<std::string, int64_t> adapters_by_tier;  // device/host/disk -> loaded adapters there
  std::map<std::string, int64_t> jobs_ended;  // succeeded/failed/cancelled -> count (all time)
  std::vector<std::pair<std::string, bool>> training_devices_busy;  // slot name -> held by a running job
};

class ServiceCore {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceCore>> Start(const CoreOptions& options);
  virtual ~ServiceCore() = default;

  // Drain: refuse new jobs, ask running jobs to checkpoint and stop (they stay queued
  // for the next start), wait for workers.
  virtual void Shutdown() = 0;

  virtual absl::StatusOr<DatasetInfo> CreateDataset(const DatasetUpload& upload) = 0;
  virtual absl::StatusOr<DatasetInfo> GetDataset(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<DatasetInfo>> ListDatasets(const Page& page, std::string* next_page_token) = 0;
  virtual absl::Status DeleteDataset(const std::string& id, const std::string& actor) = 0;

  virtual absl::StatusOr<JobInfo> SubmitJob(const JobSpec& spec, const std::string& actor) = 0;
  virtual absl::StatusOr<JobInfo> GetJob(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<JobInfo>> ListJobs(const Page& page, std::string* next_page_token) = 0;
  virtual absl::StatusOr<JobInfo> CancelJob(const std::string& id, const std::string& actor) = 0;
  // Events with seq > after_seq; waits up to timeout_ms for new ones. *terminal is set
  // when the job has ended and every event was returned.
  virtual absl::StatusOr<std::vector<JobEvent>> WaitJobEvents(const std::string& id, int64_t after_seq, int64_t timeout_ms,
                                                              bool* terminal) = 0;

  virtual absl::StatusOr<std::vector<AdapterInfo>> ListAdapters(const Page& page, std::string* next_page_token) = 0;
  virtual absl::StatusOr<AdapterInfo> GetAdapter(const std::string& ref) = 0;  // id or alias
  // Adapters that are listed but cannot be loaded (see AdapterInfo::load_error), by id.
  virtual std::vector<UnloadableAdapter> UnloadableAdapters() = 0;
  // Registers an existing PEFT adapter directory as the next version of `name` (validated
  // against the resident base, copied under the state directory).
  // `path` (relative: to the import root) must resolve, symlinks included, inside
  // CoreOptions::import_root: PERMISSION_DENIED naming `path` otherwise; FAILED_PRECONDITION
  // when no import root is configured. A refused adapter leaves nothing behind.
  virtual absl::StatusOr<AdapterInfo> ImportAdapter(const std::string& name, const std::string& path,
                                                    bool allow_base_mismatch, const std::string& actor) = 0;
  // Checks an upload's header before any bytes arrive (INVALID_ARGUMENT naming the field,
  // e.g. "header.files[1].sha256"; RESOURCE_EXHAUSTED past max_adapter_upload_bytes) and
  // creates an empty staging directory under upload_dir() for the files; returns its path.
  virtual absl::StatusOr<std::string> BeginAdapterUpload(const AdapterUpload& upload) = 0;
  // Verifies the files in upload.staging_dir against the header (size, sha256), validates
  // the adapter against the resident base as ImportAdapter does, then moves it under the
  // state directory and registers the next version of upload.name ('trained', audited).
  // The staging directory is gone afterwards whatever the outcome; a refusal stores nothing.
  virtual absl::StatusOr<AdapterInfo> UploadAdapter(const AdapterUpload& upload) = 0;
  // The files to stream for an export: peft = the adapter's own directory; gguf = a scratch
  // directory the GGUF exporter filled (AdapterExport::temporary). INVALID_ARGUMENT names
  // format/type/merge.
  virtual absl::StatusOr<AdapterExport> ExportAdapter(const AdapterExportRequest& request) = 0;
  virtual absl::StatusOr<AdapterInfo> LoadAdapter(const std::string& ref, bool allow_base_mismatch, bool pin,
                                                  const std::string& actor) = 0;
  virtual absl::StatusOr<AdapterInfo> UnloadAdapter(const std::string& ref, const std::string& actor) = 0;
  // Deploys the adapter under `alias` (policy: approval required; the CI gate, see
  // PromotionCheck) and moves the alias atomically. FAILED_PRECONDITION when the gate
  // refuses, its message naming both metrics and the interval.
  virtual absl::StatusOr<PromoteResult> Promote(const PromoteInput& input) = 0;
  // The gate's verdict for promoting `ref` onto `alias` now, without changing anything.
  virtual absl::StatusOr<PromotionCheck> CheckPromotion(const std::string& ref, const std::string& alias) = 0;
  virtual absl::StatusOr<AdapterInfo> Decide(const std::string& ref, bool approve, const DecisionInput& decision) = 0;
  virtual absl::Status DeleteAdapter(const std::string& ref, const std::string& actor) = 0;

  // INVALID_ARGUMENT naming the field for bad settings or an unsupported constraint,
  // NOT_FOUND for an unknown adapter reference, RESOURCE_EXHAUSTED when the queue is
  // full, UNAVAILABLE while shutting down. on_piece returning false cancels.
  virtual absl::StatusOr<GenerateOutput> Generate(const GenerateInput& input, const TextPieceCallback& on_piece) = 0;
  virtual absl::StatusOr<ClassifyOutput> Classify(const std::string& adapter, const std::string& text,
                                                  const std::vector<std::string>& labels) = 0;

  virtual absl::StatusOr<EvaluationInfo> Evaluate(const EvaluationInput& input) = 0;
  // The record includes the latest imported review summary under "review".
  virtual absl::StatusOr<EvaluationInfo> GetEvaluation(const std::string& id) = 0;
  // A seeded review sample of an adapter evaluation (baseline and adapter outputs side by
  // side); re-exporting replaces the sample and starts its interactive review afresh (the
  // judgements and submissions of the old sample are dropped; stored summaries stay).
  // FAILED_PRECONDITION for a baseline-only record.
  virtual absl::StatusOr<ReviewExport> ExportReviewSample(const ReviewExportInput& input) = 0;
  // Imports one file per reviewer against the exported sample, stores the summary (mean
  // ratings, preferences, Cohen's kappa between reviewers) and returns it.
  virtual absl::StatusOr<nlohmann::json> ImportReviews(const std::string& evaluation_id,
                                                       const std::vector<ReviewerFile>& files, const std::string& actor) = 0;

  // Interactive review. The queue: evaluations with an exported review sample, newest
  // first, with the asking reviewer's progress.
  virtual absl::StatusOr<std::vector<ReviewQueueEntry>> ListReviewQueue(const std::string& reviewer) = 0;
  virtual absl::StatusOr<ReviewSessionInfo> GetReviewSession(const std::string& evaluation_id,
                                                             const std::string& reviewer) = 0;
  // Saves (replaces) one judgement. INVALID_ARGUMENT naming the field, NOT_FOUND for an
  // item outside the sample, FAILED_PRECONDITION after this reviewer submitted.
  virtual absl::Status SaveJudgement(const std::string& evaluation_id, const std::string& reviewer,
                                     const ItemJudgement& judgement) = 0;
  // Ends this reviewer's work (FAILED_PRECONDITION naming how many items are unrated, or
  // when already submitted), then recomputes and stores the review summary over every
  // submitted reviewer (mean ratings, preferences, the adapter's win rate with its Wilson
  // 95 % interval, ties apart; Cohen's kappa) and returns it; audited as "review.submit"
  // in the same transaction. Saves are stored, not audited.
  virtual absl::StatusOr<nlohmann::json> SubmitReview(const std::string& evaluation_id, const std::string& reviewer) = 0;
  // Audit entries about one subject ("adapter:<id>", "evaluation:<id>", ...), oldest first:
  // {seq, at, actor, subject, action, from_state, to_state, details, hash}.
  virtual absl::StatusOr<std::vector<nlohmann::json>> AuditTrail(const std::string& subject) = 0;

  // Drift reports of the adapters with traffic (computed now, off the request path).
  virtual std::vector<DriftInfo> DriftReports() = 0;
  // Blocks until every observed prompt is in its window (tests).
  virtual void FlushDrift() = 0;

  virtual CoreStats Stats() = 0;

  // Devices the daemon enumerated at start ("cuda:N"..., "cpu") and the one it uses.
  virtual std::vector<std::string> devices() const = 0;

  virtual const CoreOptions& options() const = 0;
  virtual std::string base_fingerprint() const = 0;
  virtual std::string upload_dir() const = 0;
};

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_SERVICE_CORE_H_
