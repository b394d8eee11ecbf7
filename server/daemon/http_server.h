// The daemon's HTTP/1.1 listeners (Prometheus /metrics, the OpenAI-compatible API),
// on cpp-httplib (Debian libcpp-httplib-dev): one server per address, its own
// accept thread and worker pool, TLS when a certificate is given.
//
// Worker threads are plain std::threads (normal stacks): with libtorch in the
// process, small fixed-stack threads fail to start (its static TLS is large).
//
// TLS (set here, not left to the library's or the system's defaults): TLS 1.2 minimum
// (1.3 preferred), TLS 1.2 cipher suites limited to kTls12CipherSuites (ECDHE key
// exchange, AEAD: the same list gRPC uses by default), TLS 1.3 suites OpenSSL's (all
// AEAD), no compression, no renegotiation.
#ifndef QLORAD_SERVER_DAEMON_HTTP_SERVER_H_
#define QLORAD_SERVER_DAEMON_HTTP_SERVER_H_

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <httplib.h>

#include "absl/status/statusor.h"

namespace qlorad::server {

// The TLS 1.2 cipher suites the HTTP listeners accept (OpenSSL names).
inline constexpr char kTls12CipherSuites[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-GCM-SHA384";

struct HttpServerOptions {
  std::string address;        // HOST:PORT; port 0 picks a free one
  std::string flag;           // the flag that set it, for errors ("--openai-address")
  std::string tls_cert, tls_key, tls_client_ca;  // PEM files; empty cert = plain HTTP
  size_t threads = 8;         // concurrent requests (a streaming response holds one)
  size_t max_body_bytes = 8 << 20;
};

class HttpServer {
 public:
  // Binds, lets `routes` register handlers, then serves until destroyed.
  // UNAVAILABLE naming the flag when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           const std::function<void(httplib::Server&)>& routes);
  ~HttpServer();  // stops accepting, waits for handlers to return
  int port() const { return port_; }
  bool tls() const { return tls_; }

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  bool tls_ = false;
};

// The message of an exception a handler let escape (for an exception handler's 500).
std::string DescribeException(std::exception_ptr error);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_HTTP_SERVER_H_
