// qlorad.v1.Adapters over ServiceCore.
#ifndef QLORAD_SERVER_DAEMON_ADAPTERS_SERVICE_H_
#define QLORAD_SERVER_DAEMON_ADAPTERS_SERVICE_H_

#include "qlorad/v1/adapters.grpc.pb.h"
#include "server/daemon/daemon_context.h"

namespace qlorad::server {

// AdapterInfo -> v1::Adapter.
void ToProto(const service::AdapterInfo& a, v1::Adapter* out);
void ToProto(const service::PromotionCheck& c, v1::PromotionCheck* out);

class AdaptersService final : public qlorad::v1::Adapters::Service {
 public:
  explicit AdaptersService(DaemonContext d) : d_(std::move(d)) {}
  grpc::Status ListAdapters(grpc::ServerContext* c, const v1::ListAdaptersRequest* r, v1::ListAdaptersResponse* out) override;
  grpc::Status GetAdapter(grpc::ServerContext* c, const v1::AdapterRef* r, v1::Adapter* out) override;
  grpc::Status ImportAdapter(grpc::ServerContext* c, const v1::ImportAdapterRequest* r, v1::Adapter* out) override;
  grpc::Status LoadAdapter(grpc::ServerContext* c, const v1::LoadAdapterRequest* r, v1::Adapter* out) override;
  grpc::Status UnloadAdapter(grpc::ServerContext* c, const v1::AdapterRef* r, v1::Adapter* out) override;
  grpc::Status PromoteAdapter(grpc::ServerContext* c, const v1::PromoteAdapterRequest* r, v1::Adapter* out) override;
  grpc::Status CheckPromotion(grpc::ServerContext* c, const v1::PromoteAdapterRequest* r,
                              v1::PromotionCheck* out) override;
  grpc::Status ApproveAdapter(grpc::ServerContext* c, const v1::DecisionRequest* r, v1::Adapter* out) override;
  grpc::Status RejectAdapter(grpc::ServerContext* c, const v1::DecisionRequest* r, v1::Adapter* out) override;
  grpc::Status DeleteAdapter(grpc::ServerContext* c, const v1::AdapterRef* r, google::protobuf::Empty* out) override;
  // adapter_transfer.cc: files in and out.
  grpc::Status UploadAdapter(grpc::ServerContext* c, grpc::ServerReader<v1::UploadAdapterRequest>* reader,
                             v1::Adapter* out) override;
  grpc::Status ExportAdapter(grpc::ServerContext* c, const v1::ExportAdapterRequest* r,
                             grpc::ServerWriter<v1::FileChunk>* writer) override;

 private:
  // Authorizes, calls `get` and fills `out` from the AdapterInfo it returns.
  template <typename Get>
  grpc::Status Respond(grpc::ServerContext* c, const char* method, Permission needed, v1::Adapter* out, Get get);
  DaemonContext d_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_ADAPTERS_SERVICE_H_
