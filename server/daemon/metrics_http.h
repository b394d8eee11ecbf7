// A minimal HTTP/1.1 endpoint for Prometheus scrapes: GET /metrics returns the text
// exposition (format 0.0.4) produced by `render`; anything else is 404/405. One
// connection at a time on one thread (scrapes are sequential), each closed after the reply.
//
// Why not prometheus-cpp's Exposer: its civetweb server starts worker threads with a
// small fixed stack, and with libtorch in the process (large static TLS) pthread_create
// fails ("Cannot create threads"); this listener uses normal std::thread stacks.
#ifndef QLORAD_SERVER_DAEMON_METRICS_HTTP_H_
#define QLORAD_SERVER_DAEMON_METRICS_HTTP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace qlorad::server {

class MetricsHttpServer {
 public:
  // `address` is HOST:PORT (port 0 picks a free one).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                                   std::function<std::string()> render);
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  void Serve();
  void HandleConnection(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::function<std::string()> render_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_METRICS_HTTP_H_
