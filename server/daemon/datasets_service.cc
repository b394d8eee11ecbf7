#include "server/daemon/datasets_service.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/util/path_name.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace qlorad::server {
namespace {

void ToProto(const service::DatasetInfo& info, bool with_manifest, v1::Dataset* out) {
  out->set_dataset_id(info.id);
  out->set_created_at(info.created_at);
  out->set_format(info.format);
  out->set_train_examples(info.train_examples);
  out->set_holdout_examples(info.holdout_examples);
  out->set_train_sha256(info.train_sha256);
  out->set_holdout_sha256(info.holdout_sha256);
  if (!info.validation_report.is_null()) out->set_validation_report_json(info.validation_report.dump());
  if (!info.pii_report.is_null()) out->set_pii_report_json(info.pii_report.dump());
  if (with_manifest) out->set_manifest_json(info.manifest.dump());
}

// Streams the upload's chunks into `path`; RESOURCE_EXHAUSTED past `limit` bytes, and
// RESOURCE_EXHAUSTED naming `path` when its volume is full. The caller removes `path`.
absl::Status ReceiveChunks(grpc::ServerReader<v1::UploadDatasetRequest>* reader, const std::string& path, int64_t limit) {
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<FileWriter> file, FileWriter::Create(path));
  int64_t bytes = 0;
  v1::UploadDatasetRequest part;
  while (reader->Read(&part)) {
    if (!part.has_chunk()) return absl::InvalidArgumentError("header: only the first message may carry the header");
    bytes += static_cast<int64_t>(part.chunk().size());
    if (bytes > limit)
      return absl::ResourceExhaustedError(absl::StrCat("upload exceeds the limit of ", limit, " bytes (hint: --max-upload-bytes)"));
    QLORAD_RETURN_IF_ERROR(file->Append(part.chunk()));
  }
  QLORAD_RETURN_IF_ERROR(file->Close());
  if (bytes == 0) return absl::InvalidArgumentError("chunk: the upload carried no data");
  return absl::OkStatus();
}

}  // namespace

grpc::Status DatasetsService::UploadDataset(grpc::ServerContext* context,
                                            grpc::ServerReader<v1::UploadDatasetRequest>* reader, v1::Dataset* response) {
  return HandleRpc(d_, context, "Datasets", "UploadDataset", Permission::kTrain, [&](const Principal& who) {
    v1::UploadDatasetRequest first;
    if (!reader->Read(&first) || !first.has_header())
      return ToGrpcStatus(absl::InvalidArgumentError("header: the first message must carry the upload header"));
    const v1::UploadDatasetHeader& h = first.header();
    // Refused before a byte is stored: the id becomes datasets/<id> (the core checks it again).
    if (absl::Status id = ValidatePathName("dataset_id", h.dataset_id()); !id.ok()) return ToGrpcStatus(id);
    static std::atomic<int> counter{0};
    const std::string path = absl::StrCat(d_.core->upload_dir(), "/upload-", ::getpid(), "-", counter++, ".part");
    absl::Status received = ReceiveChunks(reader, path, d_.max_upload_bytes);
    absl::StatusOr<service::DatasetInfo> info = absl::UnknownError("upload not processed");
    if (!received.ok()) {
      info = received;
    } else {
      service::DatasetUpload upload;
      upload.dataset_id = h.dataset_id();
      upload.source_path = path;
      upload.format = h.format().empty() ? "auto" : h.format();
      upload.csv = h.csv();
      if (h.holdout_fraction() != 0) upload.holdout_fraction = h.holdout_fraction();
      if (h.seed() != 0) upload.seed = h.seed();
      upload.allow_small_dataset = h.allow_small_dataset();
      upload.anonymize_pii = !h.disable_pii_anonymization();
      upload.actor = who.name;
      info = d_.core->CreateDataset(upload);
    }
    std::remove(path.c_str());
    if (!info.ok()) return ToGrpcStatus(info.status());
    ToProto(*info, false, response);
    return grpc::Status::OK;
  });
}

grpc::Status DatasetsService::GetDataset(grpc::ServerContext* context, const v1::GetDatasetRequest* request,
                                         v1::Dataset* response) {
  return HandleRpc(d_, context, "Datasets", "GetDataset", Permission::kRead, [&](const Principal&) {
    auto info = d_.core->GetDataset(request->dataset_id());
    if (!info.ok()) return ToGrpcStatus(info.status());
    ToProto(*info, true, response);
    return grpc::Status::OK;
  });
}

grpc::Status DatasetsService::ListDatasets(grpc::ServerContext* context, const v1::ListDatasetsRequest* request,
                                           v1::ListDatasetsResponse* response) {
  return HandleRpc(d_, context, "Datasets", "ListDatasets", Permission::kRead, [&](const Principal&) {
    std::string next;
    auto list = d_.core->ListDatasets({request->page_size(), request->page_token()}, &next);
    if (!list.ok()) return ToGrpcStatus(list.status());
    for (const auto& info : *list) ToProto(info, false, response->add_datasets());
    response->set_next_page_token(next);
    return grpc::Status::OK;
  });
}

grpc::Status DatasetsService::DeleteDataset(grpc::ServerContext* context, const v1::DeleteDatasetRequest* request,
                                            google::protobuf::Empty*) {
  return HandleRpc(d_, context, "Datasets", "DeleteDataset", Permission::kTrain, [&](const Principal& who) {
    return ToGrpcStatus(d_.core->DeleteDataset(request->dataset_id(), who.name));
  });
}

}  // namespace qlorad::server
