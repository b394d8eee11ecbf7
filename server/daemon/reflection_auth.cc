#include "server/daemon/reflection_auth.h"

#include <map>
#include <optional>
#include <string>

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/interceptor.h>

#include "absl/strings/match.h"
#include "server/daemon/status_mapping.h"

namespace qlorad::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class ReflectionAuthInterceptor : public grpc::experimental::Interceptor {
 public:
  ReflectionAuthInterceptor(Authenticator* auth, std::string method) : auth_(auth), method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) Authorize(methods);
    if (denied_.has_value()) {
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
          methods->GetRecvMessage() != nullptr) {
        // The reflection service's request type is a generated protobuf message (single
        // inheritance from google::protobuf::Message): emptied, it asks for nothing.
        static_cast<google::protobuf::Message*>(methods->GetRecvMessage())->Clear();
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
        grpc::ByteBuffer* out = methods->GetSerializedSendMessage();
        if (out != nullptr) out->Clear();  // an empty response: valid, and says nothing
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS))
        methods->ModifySendStatus(*denied_);
    }
    methods->Proceed();
  }

 private:
  void Authorize(grpc::experimental::InterceptorBatchMethods* methods) {
    std::multimap<grpc::string_ref, grpc::string_ref>* metadata = methods->GetRecvInitialMetadata();
    std::optional<std::string> header;
    if (metadata != nullptr) {
      auto it = metadata->find("authorization");
      if (it != metadata->end()) header.emplace(it->second.data(), it->second.size());
    }
    absl::StatusOr<Principal> who =
        auth_->AuthorizeHeader(header ? &*header : nullptr, Permission::kRead, method_.c_str());
    if (!who.ok()) denied_ = ToGrpcStatus(who.status());
  }

  Authenticator* auth_;
  const std::string method_;
  std::optional<grpc::Status> denied_;
};

class ReflectionAuthFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ReflectionAuthFactory(Authenticator* auth) : auth_(auth) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    if (info->method() == nullptr || !absl::StartsWith(info->method(), kReflectionMethodPrefix)) return nullptr;
    return new ReflectionAuthInterceptor(auth_, info->method());  // owned by gRPC (the API's contract)
  }

 private:
  Authenticator* auth_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeReflectionAuthFactory(Authenticator* auth) {
  return std::make_unique<ReflectionAuthFactory>(auth);
}

}  // namespace qlorad::server
