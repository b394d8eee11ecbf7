// The one place absl::Status (core's error model) becomes a front end's status: a
// gRPC status (codes map one-to-one, both follow google.rpc.Code) or an HTTP status
// with OpenAI's error type (the OpenAI-compatible API). The message is kept.
#ifndef QLORAD_SERVER_DAEMON_STATUS_MAPPING_H_
#define QLORAD_SERVER_DAEMON_STATUS_MAPPING_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace qlorad::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

struct HttpError {
  int status;        // 400, 401, 403, 404, 429, 499, 500, 503, 504
  const char* type;  // OpenAI's error.type
};
HttpError ToHttpError(absl::StatusCode code);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_STATUS_MAPPING_H_
