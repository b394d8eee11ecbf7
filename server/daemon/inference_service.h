// qlorad.v1.Inference and qlorad.v1.Evaluations over ServiceCore.
#ifndef QLORAD_SERVER_DAEMON_INFERENCE_SERVICE_H_
#define QLORAD_SERVER_DAEMON_INFERENCE_SERVICE_H_

#include "qlorad/v1/evaluations.grpc.pb.h"
#include "qlorad/v1/inference.grpc.pb.h"
#include "server/daemon/daemon_context.h"

namespace qlorad::server {

// Observes each finished generation (for latency/token metrics); may be empty.
using GenerationObserver = std::function<void(const service::GenerateOutput&, const std::string& adapter_ref)>;

class InferenceService final : public qlorad::v1::Inference::Service {
 public:
  InferenceService(DaemonContext d, GenerationObserver observer) : d_(std::move(d)), observer_(std::move(observer)) {}
  grpc::Status Generate(grpc::ServerContext* c, const v1::GenerateRequest* r, v1::GenerateResponse* out) override;
  grpc::Status GenerateStream(grpc::ServerContext* c, const v1::GenerateRequest* r,
                              grpc::ServerWriter<v1::GenerateChunk>* writer) override;
  grpc::Status Classify(grpc::ServerContext* c, const v1::ClassifyRequest* r, v1::ClassifyResponse* out) override;

 private:
  DaemonContext d_;
  GenerationObserver observer_;
};

class EvaluationsService final : public qlorad::v1::Evaluations::Service {
 public:
  explicit EvaluationsService(DaemonContext d) : d_(std::move(d)) {}
  grpc::Status CreateEvaluation(grpc::ServerContext* c, const v1::CreateEvaluationRequest* r, v1::Evaluation* out) override;
  grpc::Status GetEvaluation(grpc::ServerContext* c, const v1::GetEvaluationRequest* r, v1::Evaluation* out) override;
  grpc::Status ExportReviewSample(grpc::ServerContext* c, const v1::ExportReviewSampleRequest* r, v1::ReviewSample* out) override;
  grpc::Status ImportReviews(grpc::ServerContext* c, const v1::ImportReviewsRequest* r, v1::ReviewSummary* out) override;

 private:
  DaemonContext d_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_INFERENCE_SERVICE_H_
