// What every gRPC service of the daemon shares: the core (behind its one interface),
// the authenticator, limits and the RPC metrics hook. Services are thin: authorize,
// translate the request, call ServiceCore, translate the result, map the status.
#ifndef QLORAD_SERVER_DAEMON_DAEMON_CONTEXT_H_
#define QLORAD_SERVER_DAEMON_DAEMON_CONTEXT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <grpcpp/server_context.h>

#include "core/service/service_core.h"
#include "server/daemon/auth.h"
#include "server/daemon/status_mapping.h"

namespace qlorad::server {

struct DaemonContext {
  service::ServiceCore* core = nullptr;
  Authenticator* auth = nullptr;
  int64_t max_upload_bytes = 256ll << 20;
  // Called once per finished RPC (service, method, status, seconds in the handler); may be empty.
  std::function<void(const char*, const char*, const grpc::Status&, double)> on_rpc_done;
};

// Authorizes, runs `body` with the caller's principal, records the outcome.
template <typename Body>
grpc::Status HandleRpc(const DaemonContext& d, grpc::ServerContext* context, const char* service, const char* method,
                       Permission needed, Body body) {
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status;
  auto who = d.auth->Authorize(*context, needed, method);
  if (!who.ok()) {
    status = ToGrpcStatus(who.status());
  } else {
    status = body(*who);
  }
  if (d.on_rpc_done)
    d.on_rpc_done(service, method, status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return status;
}

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_DAEMON_CONTEXT_H_
