// The daemon's Prometheus metrics (deploy/METRICS.md is the contract): a prometheus-cpp
// registry served on --metrics-address at /metrics (text format 0.0.4, http_server.h). Request-path
// metrics are updated inline (counters/histograms: lock-free increments); job and
// adapter gauges are refreshed by a background thread from ServiceCore every second.
//
// The `adapter` label is bounded: the first `max_adapters` distinct adapter ids that
// receive traffic get their own series for the life of the process, later ones share
// adapter="other"; requests without an adapter are adapter="base".
// `job_id` labels exist only for running jobs (removed when a job leaves 'running').
#ifndef QLORAD_SERVER_DAEMON_METRICS_H_
#define QLORAD_SERVER_DAEMON_METRICS_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/support/status.h>

#include "absl/status/statusor.h"
#include "core/service/service_core.h"

#include "server/daemon/http_server.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace qlorad::server {

class DaemonMetrics {
 public:
  // Starts the HTTP endpoint ("" = registry only, no endpoint).
  // memory_limit_bytes <= 0: the cgroup's limit, if any, is exported instead.
  static absl::StatusOr<std::unique_ptr<DaemonMetrics>> Start(const std::string& address, int max_adapters,
                                                              int64_t memory_limit_bytes,
                                                              service::ServiceCore* core);
  ~DaemonMetrics();

  void ObserveRpc(const char* service, const char* method, const grpc::Status& status, double seconds);
  void ObserveGeneration(const service::GenerateOutput& output);
  std::string Scrape() const;  // the text exposition
  int port() const { return http_ ? http_->port() : 0; }

 private:
  DaemonMetrics() = default;
  std::string AdapterLabel(const std::string& adapter_id);
  void RefreshLoop();
  void Refresh();
  void RefreshDrift();
  void RefreshStats();

  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<Families> f_;
  service::ServiceCore* core_ = nullptr;
  int max_adapters_ = 100;
  int64_t memory_limit_bytes_ = 0;
  std::mutex adapters_mu_;
  std::set<std::string> adapter_labels_;
  std::set<std::string> job_labels_;
  std::atomic<bool> stopping_{false};
  std::thread refresher_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_METRICS_H_
