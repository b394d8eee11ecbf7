// libqlorad_client: a StatusOr API over the qlorad.v1 stubs. Depends only on proto/
// (and abseil). Every call attaches the bearer token and the per-call deadline; gRPC
// errors come back as absl::Status with the same code and message.
//
//   QLORAD_ASSIGN_OR_RETURN(auto client, qlorad::client::Client::Connect({"127.0.0.1:50051", token}));
//   QLORAD_ASSIGN_OR_RETURN(v1::Job job, client->CreateJob(request));
#ifndef QLORAD_CLIENT_QLORAD_CLIENT_H_
#define QLORAD_CLIENT_QLORAD_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "absl/status/statusor.h"
#include "qlorad/v1/adapters.grpc.pb.h"
#include "qlorad/v1/datasets.grpc.pb.h"
#include "qlorad/v1/evaluations.grpc.pb.h"
#include "qlorad/v1/inference.grpc.pb.h"
#include "qlorad/v1/jobs.grpc.pb.h"

namespace qlorad::client {

namespace v1 = ::qlorad::v1;

struct ClientOptions {
  std::string address = "127.0.0.1:50051";
  std::string token;              // bearer token ("" = none)
  std::string tls_ca;             // PEM file: use TLS, verifying the server against it
  std::string tls_cert, tls_key;  // PEM files: client certificate (mutual TLS)
  std::string tls_server_name;    // override the name checked in the server certificate
  double timeout_seconds = 600;   // per call (streams: the whole stream)
};

absl::Status FromGrpcStatus(const grpc::Status& status);

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);

  absl::StatusOr<v1::Dataset> UploadDataset(const v1::UploadDatasetHeader& header, const std::string& path);
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& id);
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets(int page_size, const std::string& page_token);
  absl::Status DeleteDataset(const std::string& id);

  absl::StatusOr<v1::Job> CreateJob(const v1::CreateJobRequest& request);
  absl::StatusOr<v1::Job> GetJob(const std::string& id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(int page_size, const std::string& page_token);
  absl::StatusOr<v1::Job> CancelJob(const std::string& id);
  // Calls on_event for each event until the job ends (OK) or on_event returns false.
  absl::Status WatchJob(const std::string& id, int64_t after_sequence, const std::function<bool(const v1::JobEvent&)>& on_event);

  absl::StatusOr<v1::ListAdaptersResponse> ListAdapters(int page_size, const std::string& page_token);
  absl::StatusOr<v1::Adapter> GetAdapter(const std::string& ref);
  absl::StatusOr<v1::Adapter> ImportAdapter(const std::string& name, const std::string& path, bool allow_base_mismatch);
  absl::StatusOr<v1::Adapter> LoadAdapter(const std::string& ref, bool allow_base_mismatch, bool pin = false);
  absl::StatusOr<v1::Adapter> UnloadAdapter(const std::string& ref);
  // The reply's `promotion` holds the CI gate's verdict; override_reason promotes a refused one (audited).
  absl::StatusOr<v1::Adapter> PromoteAdapter(const std::string& ref, const std::string& alias,
                                             const std::string& override_reason = "");
  absl::StatusOr<v1::PromotionCheck> CheckPromotion(const std::string& ref, const std::string& alias);
  absl::StatusOr<v1::Adapter> ApproveAdapter(const v1::DecisionRequest& request);
  absl::StatusOr<v1::Adapter> RejectAdapter(const v1::DecisionRequest& request);
  absl::Status DeleteAdapter(const std::string& ref);
  // Uploads the PEFT adapter in local directory `dir` (adapter_config.json,
  // adapter_model.safetensors, and training_run.json / README.md when present) as the next
  // version of `name`: a header with each file's size and SHA-256, then 1 MiB chunks.
  absl::StatusOr<v1::Adapter> UploadAdapter(const std::string& dir, const std::string& name, bool allow_base_mismatch);
  // Writes the export's files into `dir` (created if needed); returns the file names.
  absl::StatusOr<std::vector<std::string>> ExportAdapter(const v1::ExportAdapterRequest& request, const std::string& dir);
  absl::StatusOr<std::vector<std::string>> ExportAdapter(const std::string& ref, const std::string& dir);

  absl::StatusOr<v1::GenerateResponse> Generate(const v1::GenerateRequest& request);
  // Calls on_chunk for each streamed chunk; returning false cancels the call.
  absl::Status GenerateStream(const v1::GenerateRequest& request, const std::function<bool(const v1::GenerateChunk&)>& on_chunk);
  absl::StatusOr<v1::ClassifyResponse> Classify(const v1::ClassifyRequest& request);

  absl::StatusOr<v1::Evaluation> CreateEvaluation(const v1::CreateEvaluationRequest& request);
  absl::StatusOr<v1::Evaluation> GetEvaluation(const std::string& id);
  absl::StatusOr<v1::ReviewSample> ExportReviewSample(const v1::ExportReviewSampleRequest& request);
  absl::StatusOr<v1::ReviewSummary> ImportReviews(const v1::ImportReviewsRequest& request);

 private:
  explicit Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  void Prepare(grpc::ClientContext& context) const;
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Unary(Method method, const Request& request);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Datasets::Stub> datasets_;
  std::unique_ptr<v1::Jobs::Stub> jobs_;
  std::unique_ptr<v1::Adapters::Stub> adapters_;
  std::unique_ptr<v1::Inference::Stub> inference_;
  std::unique_ptr<v1::Evaluations::Stub> evaluations_;
};

}  // namespace qlorad::client

#endif  // QLORAD_CLIENT_QLORAD_CLIENT_H_
