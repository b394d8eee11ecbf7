#include "client/qlorad_client.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <openssl/evp.h>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"
#include "core/util/path_name.h"

namespace qlorad::client {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const ClientOptions& o) {
  if (o.tls_ca.empty() && o.tls_cert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca.empty()) {
    auto ca = ReadPem(o.tls_ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!o.tls_cert.empty()) {
    auto cert = ReadPem(o.tls_cert);
    auto key = ReadPem(o.tls_key);
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return grpc::SslCredentials(ssl);
}

// Lowercase hex SHA-256 of a file, streamed.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::string buffer(1 << 20, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    EVP_DigestUpdate(ctx, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) absl::StrAppend(&hex, absl::Hex(digest[i], absl::kZeroPad2));
  return hex;
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  auto credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
  auto channel = grpc::CreateCustomChannel(options.address, *credentials, args);
  return std::unique_ptr<Client>(new Client(options, std::move(channel)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      datasets_(v1::Datasets::NewStub(channel_)),
      jobs_(v1::Jobs::NewStub(channel_)),
      adapters_(v1::Adapters::NewStub(channel_)),
      inference_(v1::Inference::NewStub(channel_)),
      evaluations_(v1::Evaluations::NewStub(channel_)),
      reviews_(v1::Reviews::NewStub(channel_)) {}

void Client::Prepare(grpc::ClientContext& context) const {
  if (!options_.token.empty()) context.AddMetadata("authorization", "Bearer " + options_.token);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_seconds * 1000)));
}

template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> Client::Unary(Method method, const Request& request) {
  grpc::ClientContext context;
  Prepare(context);
  Response response;
  grpc::Status status = method(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

#define QLORAD_STUB_CALL(stub, rpc) \
  [this](grpc::ClientContext* c, const auto& rq, auto* rs) { return stub->rpc(c, rq, rs); }

absl::StatusOr<v1::Dataset> Client::UploadDataset(const v1::UploadDatasetHeader& header, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  grpc::ClientContext context;
  Prepare(context);
  v1::Dataset response;
  auto writer = datasets_->UploadDataset(&context, &response);
  v1::UploadDatasetRequest part;
  *part.mutable_header() = header;
  bool open = writer->Write(part);
  std::string buffer(1 << 20, '\0');
  while (open && in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() <= 0) break;
    part.set_chunk(buffer.data(), static_cast<size_t>(in.gcount()));
    open = writer->Write(part);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Adapter> Client::UploadAdapter(const std::string& dir, const std::string& name,
                                                 bool allow_base_mismatch) {
  v1::UploadAdapterRequest part;
  v1::UploadAdapterHeader* header = part.mutable_header();
  header->set_name(name);
  header->set_allow_base_mismatch(allow_base_mismatch);
  for (const char* file : {"adapter_config.json", "adapter_model.safetensors", "training_run.json", "README.md"}) {
    const std::string path = dir + "/" + file;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      if (std::string(file) == "adapter_config.json" || std::string(file) == "adapter_model.safetensors")
        return absl::NotFoundError(absl::StrCat(path, " is missing (a PEFT adapter directory has adapter_config.json and ",
                                                "adapter_model.safetensors)"));
      continue;
    }
    auto sha = Sha256OfFile(path);
    if (!sha.ok()) return sha.status();
    v1::UploadAdapterFile* f = header->add_files();
    f->set_name(file);
    f->set_size(static_cast<int64_t>(std::filesystem::file_size(path, ec)));
    f->set_sha256(*sha);
  }
  grpc::ClientContext context;
  Prepare(context);
  v1::Adapter response;
  auto writer = adapters_->UploadAdapter(&context, &response);
  const std::vector<v1::UploadAdapterFile> files(header->files().begin(), header->files().end());
  bool open = writer->Write(part);
  std::string buffer(1 << 20, '\0');
  for (const v1::UploadAdapterFile& f : files) {
    std::ifstream in(dir + "/" + f.name(), std::ios::binary);
    int64_t sent = 0;
    while (open && in && sent < f.size()) {
      in.read(buffer.data(), static_cast<std::streamsize>(std::min<int64_t>(buffer.size(), f.size() - sent)));
      if (in.gcount() <= 0) break;
      sent += in.gcount();
      part.mutable_chunk()->set_name(f.name());
      part.mutable_chunk()->set_data(buffer.data(), static_cast<size_t>(in.gcount()));
      part.mutable_chunk()->set_last(sent == f.size());
      open = writer->Write(part);
    }
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Dataset> Client::GetDataset(const std::string& id) {
  v1::GetDatasetRequest r;
  r.set_dataset_id(id);
  return Unary<v1::Dataset>(QLORAD_STUB_CALL(datasets_, GetDataset), r);
}

absl::StatusOr<v1::ListDatasetsResponse> Client::ListDatasets(int page_size, const std::string& page_token) {
  v1::ListDatasetsRequest r;
  r.set_page_size(page_size);
  r.set_page_token(page_token);
  return Unary<v1::ListDatasetsResponse>(QLORAD_STUB_CALL(datasets_, ListDatasets), r);
}

absl::Status Client::DeleteDataset(const std::string& id) {
  v1::DeleteDatasetRequest r;
  r.set_dataset_id(id);
  return Unary<google::protobuf::Empty>(QLORAD_STUB_CALL(datasets_, DeleteDataset), r).status();
}

absl::StatusOr<v1::Job> Client::CreateJob(const v1::CreateJobRequest& request) {
  return Unary<v1::Job>(QLORAD_STUB_CALL(jobs_, CreateJob), request);
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& id) {
  v1::GetJobRequest r;
  r.set_job_id(id);
  return Unary<v1::Job>(QLORAD_STUB_CALL(jobs_, GetJob), r);
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(int page_size, const std::string& page_token) {
  v1::ListJobsRequest r;
  r.set_page_size(page_size);
  r.set_page_token(page_token);
  return Unary<v1::ListJobsResponse>(QLORAD_STUB_CALL(jobs_, ListJobs), r);
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& id) {
  v1::CancelJobRequest r;
  r.set_job_id(id);
  return Unary<v1::Job>(QLORAD_STUB_CALL(jobs_, CancelJob), r);
}

absl::Status Client::WatchJob(const std::string& id, int64_t after_sequence,
                              const std::function<bool(const v1::JobEvent&)>& on_event) {
  grpc::ClientContext context;
  Prepare(context);
  v1::WatchJobRequest r;
  r.set_job_id(id);
  r.set_after_sequence(after_sequence);
  auto reader = jobs_->WatchJob(&context, r);
  v1::JobEvent event;
  while (reader->Read(&event)) {
    if (!on_event(event)) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (status.error_code() == grpc::StatusCode::CANCELLED) return absl::OkStatus();
  return FromGrpcStatus(status);
}

absl::StatusOr<v1::ListAdaptersResponse> Client::ListAdapters(int page_size, const std::string& page_token) {
  v1::ListAdaptersRequest r;
  r.set_page_size(page_size);
  r.set_page_token(page_token);
  return Unary<v1::ListAdaptersResponse>(QLORAD_STUB_CALL(adapters_, ListAdapters), r);
}

absl::StatusOr<v1::Adapter> Client::GetAdapter(const std::string& ref) {
  v1::AdapterRef r;
  r.set_adapter(ref);
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, GetAdapter), r);
}

absl::StatusOr<v1::Adapter> Client::ImportAdapter(const std::string& name, const std::string& path, bool allow_base_mismatch) {
  v1::ImportAdapterRequest r;
  r.set_name(name);
  r.set_path(path);
  r.set_allow_base_mismatch(allow_base_mismatch);
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, ImportAdapter), r);
}

absl::StatusOr<v1::Adapter> Client::LoadAdapter(const std::string& ref, bool allow_base_mismatch, bool pin) {
  v1::LoadAdapterRequest r;
  r.set_adapter(ref);
  r.set_allow_base_mismatch(allow_base_mismatch);
  r.set_pin(pin);
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, LoadAdapter), r);
}

absl::StatusOr<v1::Adapter> Client::UnloadAdapter(const std::string& ref) {
  v1::AdapterRef r;
  r.set_adapter(ref);
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, UnloadAdapter), r);
}

absl::StatusOr<v1::Adapter> Client::PromoteAdapter(const std::string& ref, const std::string& alias,
                                                   const std::string& override_reason) {
  v1::PromoteAdapterRequest r;
  r.set_adapter(ref);
  r.set_alias(alias);
  r.set_override_reason(override_reason);
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, PromoteAdapter), r);
}

absl::StatusOr<v1::PromotionCheck> Client::CheckPromotion(const std::string& ref, const std::string& alias) {
  v1::PromoteAdapterRequest r;
  r.set_adapter(ref);
  r.set_alias(alias);
  return Unary<v1::PromotionCheck>(QLORAD_STUB_CALL(adapters_, CheckPromotion), r);
}

absl::StatusOr<v1::Adapter> Client::ApproveAdapter(const v1::DecisionRequest& request) {
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, ApproveAdapter), request);
}

absl::StatusOr<v1::Adapter> Client::RejectAdapter(const v1::DecisionRequest& request) {
  return Unary<v1::Adapter>(QLORAD_STUB_CALL(adapters_, RejectAdapter), request);
}

absl::Status Client::DeleteAdapter(const std::string& ref) {
  v1::AdapterRef r;
  r.set_adapter(ref);
  return Unary<google::protobuf::Empty>(QLORAD_STUB_CALL(adapters_, DeleteAdapter), r).status();
}

absl::StatusOr<v1::GenerateResponse> Client::Generate(const v1::GenerateRequest& request) {
  return Unary<v1::GenerateResponse>(QLORAD_STUB_CALL(inference_, Generate), request);
}

absl::Status Client::GenerateStream(const v1::GenerateRequest& request,
                                    const std::function<bool(const v1::GenerateChunk&)>& on_chunk) {
  grpc::ClientContext context;
  Prepare(context);
  auto reader = inference_->GenerateStream(&context, request);
  v1::GenerateChunk chunk;
  while (reader->Read(&chunk)) {
    if (!on_chunk(chunk)) {
      context.TryCancel();
      break;
    }
  }
  return FromGrpcStatus(reader->Finish());
}

absl::StatusOr<v1::ClassifyResponse> Client::Classify(const v1::ClassifyRequest& request) {
  return Unary<v1::ClassifyResponse>(QLORAD_STUB_CALL(inference_, Classify), request);
}

absl::StatusOr<v1::Evaluation> Client::CreateEvaluation(const v1::CreateEvaluationRequest& request) {
  return Unary<v1::Evaluation>(QLORAD_STUB_CALL(evaluations_, CreateEvaluation), request);
}

absl::StatusOr<v1::Evaluation> Client::GetEvaluation(const std::string& id) {
  v1::GetEvaluationRequest r;
  r.set_evaluation_id(id);
  return Unary<v1::Evaluation>(QLORAD_STUB_CALL(evaluations_, GetEvaluation), r);
}

absl::StatusOr<v1::ReviewSample> Client::ExportReviewSample(const v1::ExportReviewSampleRequest& request) {
  return Unary<v1::ReviewSample>(QLORAD_STUB_CALL(evaluations_, ExportReviewSample), request);
}

absl::StatusOr<v1::ReviewSummary> Client::ImportReviews(const v1::ImportReviewsRequest& request) {
  return Unary<v1::ReviewSummary>(QLORAD_STUB_CALL(evaluations_, ImportReviews), request);
}

absl::StatusOr<v1::ListReviewQueueResponse> Client::ListReviewQueue() {
  return Unary<v1::ListReviewQueueResponse>(QLORAD_STUB_CALL(reviews_, ListReviewQueue), v1::ListReviewQueueRequest());
}

absl::StatusOr<v1::ReviewSession> Client::GetReviewSession(const std::string& evaluation_id) {
  v1::GetReviewSessionRequest r;
  r.set_evaluation_id(evaluation_id);
  return Unary<v1::ReviewSession>(QLORAD_STUB_CALL(reviews_, GetReviewSession), r);
}

absl::Status Client::SaveJudgement(const v1::SaveJudgementRequest& request) {
  return Unary<google::protobuf::Empty>(QLORAD_STUB_CALL(reviews_, SaveJudgement), request).status();
}

absl::StatusOr<v1::ReviewSummary> Client::SubmitReview(const std::string& evaluation_id) {
  v1::SubmitReviewRequest r;
  r.set_evaluation_id(evaluation_id);
  return Unary<v1::ReviewSummary>(QLORAD_STUB_CALL(reviews_, SubmitReview), r);
}

absl::StatusOr<v1::AuditTrailResponse> Client::AuditTrail(const std::string& subject) {
  v1::AuditTrailRequest r;
  r.set_subject(subject);
  return Unary<v1::AuditTrailResponse>(QLORAD_STUB_CALL(reviews_, AuditTrail), r);
}

absl::StatusOr<std::vector<std::string>> Client::ExportAdapter(const std::string& ref, const std::string& dir) {
  v1::ExportAdapterRequest r;
  r.set_adapter(ref);
  return ExportAdapter(r, dir);
}

absl::StatusOr<std::vector<std::string>> Client::ExportAdapter(const v1::ExportAdapterRequest& r, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  grpc::ClientContext context;
  Prepare(context);
  auto reader = adapters_->ExportAdapter(&context, r);
  v1::FileChunk chunk;
  std::vector<std::string> names;
  std::ofstream out;
  std::string partial;  // the file being written, as NAME.part until its last chunk
  auto fail = [&](absl::Status status) {
    context.TryCancel();
    out.close();
    if (!partial.empty()) std::filesystem::remove(partial, ec);
    return status;
  };
  while (reader->Read(&chunk)) {
    // The name becomes a file in `dir`: a server must not steer the write elsewhere.
    if (absl::Status named = ValidatePathName("chunk.name", chunk.name()); !named.ok())
      return fail(absl::DataLossError(absl::StrCat("the server sent a bad file name: ", named.message())));
    if (!out.is_open()) {
      partial = dir + "/" + chunk.name() + ".part";
      out.open(partial, std::ios::binary | std::ios::trunc);
      if (!out) return fail(absl::InternalError(absl::StrCat("cannot write ", partial)));
      names.push_back(chunk.name());
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    if (!out) return fail(absl::InternalError(absl::StrCat("writing ", partial, " failed (disk full?)")));
    if (chunk.last()) {
      out.close();
      std::filesystem::rename(partial, dir + "/" + chunk.name(), ec);
      if (ec) return fail(absl::InternalError(absl::StrCat("renaming ", partial, ": ", ec.message())));
      partial.clear();
    }
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  if (!status.ok() || !partial.empty())
    return fail(status.ok() ? absl::DataLossError(absl::StrCat("the stream ended inside ", partial)) : status);
  return names;
}

}  // namespace qlorad::client
