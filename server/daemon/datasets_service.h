// qlorad.v1.Datasets over ServiceCore.
#ifndef QLORAD_SERVER_DAEMON_DATASETS_SERVICE_H_
#define QLORAD_SERVER_DAEMON_DATASETS_SERVICE_H_

#include "qlorad/v1/datasets.grpc.pb.h"
#include "server/daemon/daemon_context.h"

namespace qlorad::server {

class DatasetsService final : public qlorad::v1::Datasets::Service {
 public:
  explicit DatasetsService(DaemonContext d) : d_(std::move(d)) {}
  grpc::Status UploadDataset(grpc::ServerContext* context, grpc::ServerReader<v1::UploadDatasetRequest>* reader,
                             v1::Dataset* response) override;
  grpc::Status GetDataset(grpc::ServerContext* context, const v1::GetDatasetRequest* request, v1::Dataset* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context, const v1::ListDatasetsRequest* request,
                            v1::ListDatasetsResponse* response) override;
  grpc::Status DeleteDataset(grpc::ServerContext* context, const v1::DeleteDatasetRequest* request,
                             google::protobuf::Empty* response) override;

 private:
  DaemonContext d_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_DATASETS_SERVICE_H_
