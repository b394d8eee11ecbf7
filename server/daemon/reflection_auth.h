// Authentication for gRPC server reflection (grpc.reflection.v1alpha.ServerReflection),
// whose service comes from gRPC's plugin and so cannot call HandleRpc itself.
//
// Contract: a reflection call whose `authorization` metadata does not carry a valid
// bearer token (any role: reflection needs Permission::kRead) learns nothing. Each
// request it sends is emptied before the reflection service sees it (the service
// answers it with an empty message), every response is sent empty, and the call
// ends with the authenticator's status (UNAUTHENTICATED, or RESOURCE_EXHAUSTED past
// the rate limit). With --no-auth every caller passes, as everywhere else.
// grpc.health.v1.Health is deliberately left open (probes carry no tokens; it tells
// only SERVING / NOT_SERVING); every qlorad.v1 RPC authorizes itself in HandleRpc.
#ifndef QLORAD_SERVER_DAEMON_REFLECTION_AUTH_H_
#define QLORAD_SERVER_DAEMON_REFLECTION_AUTH_H_

#include <memory>

#include <grpcpp/support/server_interceptor.h>

#include "server/daemon/auth.h"

namespace qlorad::server {

// The method prefix this factory guards.
inline constexpr char kReflectionMethodPrefix[] = "/grpc.reflection.";

// For ServerBuilder::experimental().SetInterceptorCreators. `auth` must outlive the
// server. Creates an interceptor only for reflection methods (nullptr otherwise).
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeReflectionAuthFactory(Authenticator* auth);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_REFLECTION_AUTH_H_
