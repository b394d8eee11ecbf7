#include "server/daemon/http_server.h"

#include <chrono>

#include <openssl/ssl.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace qlorad::server {

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              const std::function<void(httplib::Server&)>& routes) {
  const size_t colon = options.address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.address.substr(colon + 1), &port) || port < 0 || port > 65535)
    return absl::InvalidArgumentError(absl::StrCat(options.flag, " '", options.address, "' is not HOST:PORT"));
  std::string host = options.address.substr(0, colon);
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::unique_ptr<HttpServer> server(new HttpServer());
  if (!options.tls_cert.empty()) {
    const char* ca = options.tls_client_ca.empty() ? nullptr : options.tls_client_ca.c_str();
    auto ssl = std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str(), ca);
    if (!ssl->is_valid())
      return absl::InvalidArgumentError(absl::StrCat(options.flag, ": cannot use the TLS certificate/key '", options.tls_cert,
                                                     "' (hint: PEM files readable by qlorad)"));
    SSL_CTX* ctx = ssl->ssl_context();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_cipher_list(ctx, kTls12CipherSuites) != 1)
      return absl::InternalError(absl::StrCat(options.flag, ": OpenSSL refused the TLS 1.2 minimum or the cipher list"));
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    server->server_ = std::move(ssl);
    server->tls_ = true;
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& s = *server->server_;
  const size_t threads = options.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_payload_max_length(options.max_body_bytes);
  s.set_read_timeout(30, 0);
  s.set_keep_alive_max_count(1000);
  s.set_tcp_nodelay(true);  // headers and body go out as separate writes: no Nagle + delayed-ACK stall (40 ms)
  routes(s);
  if (port == 0) {
    port = s.bind_to_any_port(host);
  } else if (!s.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address, " (hint: port in use? ", options.flag,
                                               " another port, or '' to disable)"));
  server->port_ = port;
  server->thread_ = std::thread([p = server.get()] { p->server_->listen_after_bind(); });
  // stop() only acts on a running server: a destructor right after Start must not hang.
  for (int i = 0; i < 5000 && !s.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return server;
}

HttpServer::~HttpServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string DescribeException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown error";
}

}  // namespace qlorad::server
