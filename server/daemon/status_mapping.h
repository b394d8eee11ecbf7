// The one place absl::Status (core's error model) becomes a gRPC status. Codes map
// one-to-one (both follow google.rpc.Code); the message is kept.
#ifndef QLORAD_SERVER_DAEMON_STATUS_MAPPING_H_
#define QLORAD_SERVER_DAEMON_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace qlorad::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_STATUS_MAPPING_H_
