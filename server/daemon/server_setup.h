// Assembles the daemon: authenticator, ServiceCore, metrics, the gRPC services on one
// server (+ health and reflection), TLS/mTLS credentials and limits.
#ifndef QLORAD_SERVER_DAEMON_SERVER_SETUP_H_
#define QLORAD_SERVER_DAEMON_SERVER_SETUP_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "core/service/service_core.h"
#include "server/daemon/console_api.h"
#include "server/daemon/daemon_flags.h"
#include "server/daemon/http_server.h"
#include "server/daemon/metrics.h"
#include "server/daemon/openai_api.h"

namespace qlorad::server {

class Daemon {
 public:
  ~Daemon();
  const std::string& listen_address() const { return listen_address_; }
  std::string DevicesText() const {
    std::string text;
    for (const auto& d : core_->devices()) text += " " + d;
    return text;
  }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  int openai_port() const { return openai_http_ ? openai_http_->port() : 0; }
  int console_port() const { return console_http_ ? console_http_->port() : 0; }
  bool console_tls() const { return console_http_ && console_http_->tls(); }
  absl::Status ReloadTokens() { return auth_->Reload(); }
  // Stored adapters found unloadable at start (restart recovery), with the reason.
  std::vector<service::UnloadableAdapter> UnloadableAdapters() const { return core_->UnloadableAdapters(); }
  // Stops accepting, lets in-flight RPCs finish for up to `seconds`, then checkpoints
  // running jobs (they resume on the next start) and stops the workers.
  void Drain(int seconds);

 private:
  friend absl::StatusOr<std::unique_ptr<Daemon>> StartDaemon(const DaemonOptions& options);
  Daemon() = default;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<service::ServiceCore> core_;
  std::unique_ptr<DaemonMetrics> metrics_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<OpenAiApi> openai_;
  std::unique_ptr<HttpServer> openai_http_;  // before openai_ in teardown (Drain)
  std::unique_ptr<ConsoleApi> console_;
  std::unique_ptr<HttpServer> console_http_;  // before console_ in teardown (Drain)
  std::string listen_address_;
  bool drained_ = false;
};

absl::StatusOr<std::unique_ptr<Daemon>> StartDaemon(const DaemonOptions& options);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_SERVER_SETUP_H_
