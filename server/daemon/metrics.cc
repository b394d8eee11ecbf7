#include "server/daemon/metrics.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"
#include "server/daemon/build_info.h"

namespace qlorad::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

// Buckets per deploy/METRICS.md.
Histogram::BucketBoundaries LatencyBuckets() { return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160}; }
Histogram::BucketBoundaries FirstTokenBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20};
}
Histogram::BucketBoundaries InterTokenBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5};
}

// cgroup v2 memory.max, else v1 memory.limit_in_bytes; 0 when unlimited or unknown.
int64_t CgroupMemoryLimit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string text;
    if (!(in >> text) || text == "max") continue;
    const long long value = std::atoll(text.c_str());
    if (value > 0 && value < (1ll << 60)) return value;  // v1 reports "unlimited" as a huge number
  }
  return 0;
}

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

struct DaemonMetrics::Families {
  explicit Families(prometheus::Registry& r)
      : build_info(BuildGauge().Name("qlorad_build_info").Help("Always 1; build identity in labels.").Register(r)),
        rpc_requests(BuildCounter().Name("qlorad_rpc_requests_total").Help("Calls finished (gRPC and the OpenAI-compatible HTTP API, service=\"OpenAI\"), by final status code.").Register(r)),
        rpc_duration(BuildHistogram().Name("qlorad_rpc_request_duration_seconds").Help("gRPC call duration.").Register(r)),
        inference_requests(BuildCounter().Name("qlorad_inference_requests_total").Help("Generation requests finished.").Register(r)),
        ttft(BuildHistogram().Name("qlorad_inference_time_to_first_token_seconds").Help("Arrival to first generated token.").Register(r)),
        inter_token(BuildHistogram().Name("qlorad_inference_inter_token_latency_seconds").Help("Mean time between consecutive generated tokens of a request.").Register(r)),
        e2e(BuildHistogram().Name("qlorad_inference_e2e_latency_seconds").Help("Arrival to last token.").Register(r)),
        prompt_tokens(BuildCounter().Name("qlorad_inference_prompt_tokens_total").Help("Prompt tokens processed.").Register(r)),
        generated_tokens(BuildCounter().Name("qlorad_inference_generated_tokens_total").Help("Tokens generated.").Register(r)),
        adapters_registered(BuildGauge().Name("qlorad_adapters_registered").Help("Adapters (versions) in the registry.").Register(r)),
        adapters_resident(BuildGauge().Name("qlorad_adapters_resident").Help("Loaded adapters per residency tier (device, host, disk).").Register(r)),
        jobs(BuildGauge().Name("qlorad_training_jobs").Help("Jobs currently in a non-terminal status.").Register(r)),
        queue_depth(BuildGauge().Name("qlorad_training_queue_depth").Help("Jobs waiting for a device.").Register(r)),
        device_busy(BuildGauge().Name("qlorad_device_busy").Help("1 while a training job holds the device slot.").Register(r)),
        step(BuildGauge().Name("qlorad_training_step").Help("Current optimizer step of a running job.").Register(r)),
        total_steps(BuildGauge().Name("qlorad_training_total_steps").Help("Planned optimizer steps of a running job.").Register(r)),
        loss(BuildGauge().Name("qlorad_training_loss").Help("Latest training loss of a running job.").Register(r)),
        learning_rate(BuildGauge().Name("qlorad_training_learning_rate").Help("Current learning rate of a running job.").Register(r)),
        tokens_per_second(BuildGauge().Name("qlorad_training_tokens_per_second").Help("Training throughput of a running job.").Register(r)),
        eta(BuildGauge().Name("qlorad_training_eta_seconds").Help("Estimated time to finish a running job.").Register(r)),
        dpo_reward_accuracy(BuildGauge().Name("qlorad_training_dpo_reward_accuracy").Help("DPO job: fraction of the step's pairs (split=train) or the validation slice's (split=validation) whose chosen reward exceeds the rejected one.").Register(r)),
        dpo_reward_margin(BuildGauge().Name("qlorad_training_dpo_reward_margin").Help("DPO job: mean chosen minus rejected reward, beta * log-ratio to the base (split=train|validation).").Register(r)),
        rss(BuildGauge().Name("qlorad_process_resident_memory_bytes").Help("Process RSS.").Register(r)),
        waiting(BuildGauge().Name("qlorad_inference_requests_waiting").Help("Generation requests queued for admission to the running batch.").Register(r)),
        running(BuildGauge().Name("qlorad_inference_requests_running").Help("Sequences in the engine's running batch.").Register(r)),
        batch_size(BuildHistogram().Name("qlorad_inference_batch_size").Help("Sequences processed per engine step (continuous batching).").Register(r)),
        kv_blocks_used(BuildGauge().Name("qlorad_kv_cache_blocks_used").Help("Paged KV-cache blocks holding positions.").Register(r)),
        kv_blocks_reserved(BuildGauge().Name("qlorad_kv_cache_blocks_reserved").Help("Paged KV-cache blocks reserved by admitted sequences.").Register(r)),
        kv_blocks_capacity(BuildGauge().Name("qlorad_kv_cache_blocks_capacity").Help("Paged KV-cache blocks in the budget.").Register(r)),
        engine_memory(BuildGauge().Name("qlorad_engine_memory_bytes").Help("Bytes the serving engine placed on its compute device, by kind.").Register(r)),
        device_memory_used(BuildGauge().Name("qlorad_device_memory_used_bytes").Help("Accelerator memory reserved by the allocator.").Register(r)),
        device_memory_total(BuildGauge().Name("qlorad_device_memory_total_bytes").Help("Accelerator memory capacity.").Register(r)),
        memory_limit(BuildGauge().Name("qlorad_process_memory_limit_bytes").Help("Configured memory limit (--memory-limit-mb, else the cgroup's).").Register(r)),
        adapter_evictions(BuildCounter().Name("qlorad_adapter_evictions_total").Help("Adapters evicted from a tier by its LRU bound.").Register(r)),
        adapter_loads(BuildCounter().Name("qlorad_adapter_loads_total").Help("Adapter placements on the compute device (loads and reloads after eviction).").Register(r)),
        adapter_load_failures(BuildCounter().Name("qlorad_adapter_load_failures_total").Help("Failed adapter loads.").Register(r)),
        adapter_unloads(BuildCounter().Name("qlorad_adapter_unloads_total").Help("Explicit unloads.").Register(r)),
        adapter_load_seconds(BuildHistogram().Name("qlorad_adapter_load_duration_seconds").Help("Time to place an adapter on the device (read and validate, or copy from host).").Register(r)),
        jobs_total(BuildCounter().Name("qlorad_training_jobs_total").Help("Jobs that entered a terminal status.").Register(r)),
        drift_psi(BuildGauge().Name("qlorad_drift_psi").Help("PSI of the live window against the adapter's training profile.").Register(r)),
        drift_js(BuildGauge().Name("qlorad_drift_js_distance").Help("Jensen-Shannon distance (base 2) of the window's token distribution to the profile's.").Register(r)),
        drift_rare(BuildGauge().Name("qlorad_drift_rare_token_rate_delta").Help("Window rare-token rate minus the profile's.").Register(r)),
        drift_embedding(BuildGauge().Name("qlorad_drift_embedding_distance").Help("Cosine distance of window vs reference mean embedding over the reference spread.").Register(r)),
        drift_window(BuildGauge().Name("qlorad_drift_window_prompts").Help("Prompts in the window the drift gauges were computed on.").Register(r)),
        drift_band(BuildGauge().Name("qlorad_drift_band").Help("0 stable, 1 moderate, 2 significant (max over PSI and JS).").Register(r)),
        drift_seconds(BuildHistogram().Name("qlorad_drift_compute_duration_seconds").Help("Time to compute one adapter's drift report (off the request path).").Register(r)) {}

  prometheus::Family<prometheus::Gauge>& build_info;
  prometheus::Family<prometheus::Counter>& rpc_requests;
  prometheus::Family<Histogram>& rpc_duration;
  prometheus::Family<prometheus::Counter>& inference_requests;
  prometheus::Family<Histogram>& ttft;
  prometheus::Family<Histogram>& inter_token;
  prometheus::Family<Histogram>& e2e;
  prometheus::Family<prometheus::Counter>& prompt_tokens;
  prometheus::Family<prometheus::Counter>& generated_tokens;
  prometheus::Family<prometheus::Gauge>& adapters_registered;
  prometheus::Family<prometheus::Gauge>& adapters_resident;
  prometheus::Family<prometheus::Gauge>& jobs;
  prometheus::Family<prometheus::Gauge>& queue_depth;
  prometheus::Family<prometheus::Gauge>& device_busy;
  prometheus::Family<prometheus::Gauge>& step;
  prometheus::Family<prometheus::Gauge>& total_steps;
  prometheus::Family<prometheus::Gauge>& loss;
  prometheus::Family<prometheus::Gauge>& learning_rate;
  prometheus::Family<prometheus::Gauge>& tokens_per_second;
  prometheus::Family<prometheus::Gauge>& eta;
  prometheus::Family<prometheus::Gauge>& dpo_reward_accuracy;
  prometheus::Family<prometheus::Gauge>& dpo_reward_margin;
  prometheus::Family<prometheus::Gauge>& rss;
  prometheus::Family<prometheus::Gauge>& waiting;
  prometheus::Family<prometheus::Gauge>& running;
  prometheus::Family<Histogram>& batch_size;
  prometheus::Family<prometheus::Gauge>& kv_blocks_used;
  prometheus::Family<prometheus::Gauge>& kv_blocks_reserved;
  prometheus::Family<prometheus::Gauge>& kv_blocks_capacity;
  prometheus::Family<prometheus::Gauge>& engine_memory;
  prometheus::Family<prometheus::Gauge>& device_memory_used;
  prometheus::Family<prometheus::Gauge>& device_memory_total;
  prometheus::Family<prometheus::Gauge>& memory_limit;
  prometheus::Family<prometheus::Counter>& adapter_evictions;
  prometheus::Family<prometheus::Counter>& adapter_loads;
  prometheus::Family<prometheus::Counter>& adapter_load_failures;
  prometheus::Family<prometheus::Counter>& adapter_unloads;
  prometheus::Family<Histogram>& adapter_load_seconds;
  prometheus::Family<prometheus::Counter>& jobs_total;
  prometheus::Family<prometheus::Gauge>& drift_psi;
  prometheus::Family<prometheus::Gauge>& drift_js;
  prometheus::Family<prometheus::Gauge>& drift_rare;
  prometheus::Family<prometheus::Gauge>& drift_embedding;
  prometheus::Family<prometheus::Gauge>& drift_window;
  prometheus::Family<prometheus::Gauge>& drift_band;
  prometheus::Family<Histogram>& drift_seconds;
};

absl::StatusOr<std::unique_ptr<DaemonMetrics>> DaemonMetrics::Start(const std::string& address, int max_adapters,
                                                                    int64_t memory_limit_bytes, service::ServiceCore* core) {
  std::unique_ptr<DaemonMetrics> m(new DaemonMetrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->f_ = std::make_unique<Families>(*m->registry_);
  m->core_ = core;
  m->max_adapters_ = max_adapters;
  m->memory_limit_bytes_ = memory_limit_bytes > 0 ? memory_limit_bytes : CgroupMemoryLimit();
  const BuildInfo& build = GetBuildInfo();
  m->f_->build_info.Add({{"version", build.version}, {"git_commit", build.git_commit},
                         {"torch_version", build.torch_version}, {"cuda", build.cuda}}).Set(1);
  if (!address.empty()) {
    HttpServerOptions http_options;
    http_options.address = address;
    http_options.flag = "--metrics-address";
    http_options.threads = 2;  // scrapes are sequential
    auto http = HttpServer::Start(http_options, [p = m.get()](httplib::Server& s) {
      s.Get("/metrics", [p](const httplib::Request&, httplib::Response& res) {
        res.set_content(p->Scrape(), "text/plain; version=0.0.4; charset=utf-8");
      });
    });
    if (!http.ok()) return http.status();
    m->http_ = std::move(http).value();
  }
  m->Refresh();
  m->refresher_ = std::thread([p = m.get()] { p->RefreshLoop(); });
  return m;
}

DaemonMetrics::~DaemonMetrics() {
  http_.reset();
  stopping_ = true;
  if (refresher_.joinable()) refresher_.join();
}

std::string DaemonMetrics::AdapterLabel(const std::string& adapter_id) {
  std::lock_guard<std::mutex> lock(adapters_mu_);
  if (adapter_id.empty()) return "base";
  if (adapter_labels_.count(adapter_id)) return adapter_id;
  if (static_cast<int>(adapter_labels_.size()) >= max_adapters_) return "other";
  adapter_labels_.insert(adapter_id);
  return adapter_id;
}

void DaemonMetrics::ObserveRpc(const char* service, const char* method, const grpc::Status& status, double seconds) {
  const std::string full_service = absl::StrCat("qlorad.v1.", service);
  f_->rpc_requests.Add({{"service", full_service}, {"method", method}, {"code", CodeName(status.error_code())}}).Increment();
  f_->rpc_duration.Add({{"service", full_service}, {"method", method}}, LatencyBuckets()).Observe(seconds);
}

void DaemonMetrics::ObserveGeneration(const service::GenerateOutput& out) {
  const std::string adapter = AdapterLabel(out.adapter_id);
  f_->inference_requests.Add({{"adapter", adapter}}).Increment();
  f_->e2e.Add({{"adapter", adapter}}, LatencyBuckets()).Observe(out.total_seconds);
  f_->prompt_tokens.Add({{"adapter", adapter}}).Increment(static_cast<double>(out.prompt_tokens));
  f_->generated_tokens.Add({{"adapter", adapter}}).Increment(static_cast<double>(out.tokens.size()));
  if (out.tokens.empty()) return;
  f_->ttft.Add({}, FirstTokenBuckets()).Observe(out.time_to_first_token_seconds);
  if (out.tokens.size() > 1)
    f_->inter_token.Add({}, InterTokenBuckets())
        .Observe((out.total_seconds - out.time_to_first_token_seconds) / static_cast<double>(out.tokens.size() - 1));
}

void DaemonMetrics::RefreshLoop() {
  while (!stopping_) {
    for (int i = 0; i < 10 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!stopping_) Refresh();
  }
}

void DaemonMetrics::RefreshDrift() {
  static const Histogram::BucketBoundaries kDriftBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025, 0.05, 0.1, 0.25, 0.5, 1, 10};
  for (const service::DriftInfo& d : core_->DriftReports()) {
    f_->drift_seconds.Add({}, kDriftBuckets).Observe(d.compute_seconds);
    const std::string adapter = AdapterLabel(d.adapter_id);
    if (adapter == "other") continue;  // gauges of different adapters cannot be merged
    f_->drift_psi.Add({{"adapter", adapter}, {"feature", "prompt_length"}}).Set(d.psi_length);
    f_->drift_js.Add({{"adapter", adapter}}).Set(d.js_tokens);
    f_->drift_rare.Add({{"adapter", adapter}}).Set(d.rare_token_rate_delta);
    if (d.has_embedding_distance) f_->drift_embedding.Add({{"adapter", adapter}}).Set(d.embedding_distance);
    f_->drift_window.Add({{"adapter", adapter}}).Set(static_cast<double>(d.window_prompts));
    f_->drift_band.Add({{"adapter", adapter}}).Set(d.band);
  }
}

// Counters mirror the core's all-time totals: increment by what is new since the last refresh.
void DaemonMetrics::RefreshStats() {
  static const Histogram::BucketBoundaries kLoadBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                           0.25, 0.5, 1, 2, 4, 8, 16};
  const service::CoreStats stats = core_->Stats();
  auto advance = [](prometheus::Counter& counter, int64_t total) {
    if (total > counter.Value()) counter.Increment(static_cast<double>(total) - counter.Value());
  };
  advance(f_->adapter_loads.Add({}), stats.adapter_loads);
  advance(f_->adapter_load_failures.Add({}), stats.adapter_load_failures);
  advance(f_->adapter_unloads.Add({}), stats.adapter_unloads);
  advance(f_->adapter_evictions.Add({{"tier", "device"}}), stats.adapter_evictions);
  for (double seconds : stats.adapter_load_seconds) f_->adapter_load_seconds.Add({}, kLoadBuckets).Observe(seconds);
  for (const auto& [status, count] : stats.jobs_ended) advance(f_->jobs_total.Add({{"status", status}}), count);
  for (const auto& [device, busy] : stats.training_devices_busy) f_->device_busy.Add({{"device", device}}).Set(busy ? 1 : 0);
  static const Histogram::BucketBoundaries kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  for (int64_t rows : stats.batch_sizes) f_->batch_size.Add({}, kBatchBuckets).Observe(static_cast<double>(rows));
  f_->waiting.Add({}).Set(static_cast<double>(stats.requests_waiting));
  f_->running.Add({}).Set(static_cast<double>(stats.requests_running));
  const prometheus::Labels device = {{"device", stats.device}};
  f_->kv_blocks_used.Add(device).Set(static_cast<double>(stats.kv_blocks_used));
  f_->kv_blocks_reserved.Add(device).Set(static_cast<double>(stats.kv_blocks_reserved));
  f_->kv_blocks_capacity.Add(device).Set(static_cast<double>(stats.kv_blocks_total));
  for (const auto& [kind, bytes] : stats.engine_bytes) f_->engine_memory.Add({{"kind", kind}}).Set(static_cast<double>(bytes));
  if (stats.device_memory_total > 0) {
    f_->device_memory_used.Add(device).Set(static_cast<double>(stats.device_memory_used));
    f_->device_memory_total.Add(device).Set(static_cast<double>(stats.device_memory_total));
  }
  if (memory_limit_bytes_ > 0) f_->memory_limit.Add({}).Set(static_cast<double>(memory_limit_bytes_));
  f_->adapters_registered.Add({}).Set(static_cast<double>(stats.adapters_registered));
  for (const auto& [tier, count] : stats.adapters_by_tier) f_->adapters_resident.Add({{"tier", tier}}).Set(static_cast<double>(count));
}

void DaemonMetrics::Refresh() {
  f_->rss.Add({}).Set(static_cast<double>(ResidentBytes()));
  RefreshStats();
  RefreshDrift();
  std::map<std::string, int> by_status = {{"queued", 0}, {"running", 0}};
  std::set<std::string> running;
  service::Page page{1000, ""};
  do {
    std::string next;
    auto jobs = core_->ListJobs(page, &next);
    if (!jobs.ok()) return;
    for (const auto& job : *jobs) {
      if (by_status.count(job.status)) ++by_status[job.status];
      if (job.status != "running") continue;
      running.insert(job.id);
      const prometheus::Labels labels = {{"job_id", job.id}};
      const nlohmann::json& p = job.progress;
      f_->step.Add(labels).Set(p.value("step", 0.0));
      f_->total_steps.Add(labels).Set(p.value("total_steps", 0.0));
      f_->loss.Add(labels).Set(p.value("loss", 0.0));
      f_->learning_rate.Add(labels).Set(p.value("learning_rate", 0.0));
      f_->tokens_per_second.Add(labels).Set(p.value("tokens_per_second", 0.0));
      f_->eta.Add(labels).Set(p.value("eta_seconds", 0.0));
      for (const char* split : {"train", "validation"}) {
        auto it = p.find(std::string(split) == "train" ? "dpo" : "dpo_eval");
        if (it == p.end() || !it->is_object()) continue;
        const prometheus::Labels split_labels = {{"job_id", job.id}, {"split", split}};
        f_->dpo_reward_accuracy.Add(split_labels).Set(it->value("accuracy", 0.0));
        f_->dpo_reward_margin.Add(split_labels).Set(it->value("margin", 0.0));
      }
    }
    page.page_token = next;
  } while (!page.page_token.empty());
  for (const std::string& gone : job_labels_) {
    if (running.count(gone)) continue;
    const prometheus::Labels labels = {{"job_id", gone}};
    for (auto* family : {&f_->step, &f_->total_steps, &f_->loss, &f_->learning_rate, &f_->tokens_per_second, &f_->eta})
      family->Remove(&family->Add(labels));
    for (const char* split : {"train", "validation"}) {
      const prometheus::Labels split_labels = {{"job_id", gone}, {"split", split}};
      for (auto* family : {&f_->dpo_reward_accuracy, &f_->dpo_reward_margin})
        if (family->Has(split_labels)) family->Remove(&family->Add(split_labels));
    }
  }
  job_labels_ = running;
  for (const auto& [status, count] : by_status) f_->jobs.Add({{"status", status}}).Set(count);
  f_->queue_depth.Add({}).Set(by_status["queued"]);
}

std::string DaemonMetrics::Scrape() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace qlorad::server
