// qlorad.v1.Adapters: the RPCs that move adapter files — UploadAdapter (client streaming
// into a staging directory the core verifies and commits) and ExportAdapter (server
// streaming of the files the core names).
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/path_name.h"
#include "core/util/status_macros.h"
#include "server/daemon/adapters_service.h"

namespace qlorad::server {
namespace {

// One declared file being received.
struct IncomingFile {
  size_t index = 0;  // in header.files
  int64_t declared = 0, received = 0;
  bool done = false;  // its `last` chunk arrived
  std::unique_ptr<FileWriter> out;  // open between its first and its last chunk
};

service::AdapterUpload FromHeader(const v1::UploadAdapterHeader& h, const std::string& actor) {
  service::AdapterUpload upload;
  upload.name = h.name();
  upload.allow_base_mismatch = h.allow_base_mismatch();
  for (const v1::UploadAdapterFile& f : h.files()) upload.files.push_back({f.name(), f.size(), f.sha256()});
  upload.actor = actor;
  return upload;
}

// Writes the chunks after the header into upload.staging_dir. Refuses undeclared names,
// bytes past a file's declared size and data after its last chunk; the core checks
// completeness and checksums afterwards.
absl::Status ReceiveFiles(grpc::ServerReader<v1::UploadAdapterRequest>* reader, const service::AdapterUpload& upload) {
  std::map<std::string, IncomingFile> files;
  for (size_t i = 0; i < upload.files.size(); ++i) {
    IncomingFile& f = files[upload.files[i].name];
    f.index = i;
    f.declared = upload.files[i].size;
  }
  v1::UploadAdapterRequest part;
  while (reader->Read(&part)) {
    if (!part.has_chunk()) return absl::InvalidArgumentError("header: only the first message may carry the header");
    const v1::FileChunk& chunk = part.chunk();
    auto it = files.find(chunk.name());
    if (it == files.end())
      return absl::InvalidArgumentError(absl::StrCat("chunk.name: '", absl::CHexEscape(chunk.name()), "' is not declared in header.files"));
    IncomingFile& f = it->second;
    if (f.done) return absl::InvalidArgumentError(absl::StrCat("chunk: ", chunk.name(), ": data after its last chunk"));
    f.received += static_cast<int64_t>(chunk.data().size());
    if (f.received > f.declared)
      return absl::InvalidArgumentError(absl::StrCat("chunk: ", chunk.name(), ": more than the ", f.declared,
                                                     " bytes of header.files[", f.index, "].size"));
    if (f.out == nullptr) {
      // Declared names passed the core's header check; checked again where the file is made.
      absl::StatusOr<std::string> path = PathInside(upload.staging_dir, "chunk.name", chunk.name());
      if (!path.ok()) return path.status();
      absl::StatusOr<std::unique_ptr<FileWriter>> created = FileWriter::Create(*path);
      if (!created.ok()) return created.status();
      f.out = *std::move(created);
    }
    QLORAD_RETURN_IF_ERROR(f.out->Append(chunk.data()));  // a full volume: RESOURCE_EXHAUSTED naming the file
    if (chunk.last()) {
      f.done = true;
      QLORAD_RETURN_IF_ERROR(f.out->Close());
      f.out.reset();
    }
  }
  for (auto& [name, f] : files)
    if (f.out != nullptr) QLORAD_RETURN_IF_ERROR(f.out->Close());
  return absl::OkStatus();
}

}  // namespace

grpc::Status AdaptersService::UploadAdapter(grpc::ServerContext* c, grpc::ServerReader<v1::UploadAdapterRequest>* reader,
                                            v1::Adapter* out) {
  return HandleRpc(d_, c, "Adapters", "UploadAdapter", Permission::kDeploy, [&](const Principal& who) {
    v1::UploadAdapterRequest first;
    if (!reader->Read(&first) || !first.has_header())
      return ToGrpcStatus(absl::InvalidArgumentError("header: the first message must carry the upload header"));
    service::AdapterUpload upload = FromHeader(first.header(), who.name);
    absl::StatusOr<std::string> staging = d_.core->BeginAdapterUpload(upload);
    if (!staging.ok()) return ToGrpcStatus(staging.status());
    upload.staging_dir = *staging;
    absl::Status received = ReceiveFiles(reader, upload);
    if (received.ok() && c->IsCancelled()) received = absl::CancelledError("the client cancelled the upload");
    if (!received.ok()) {
      std::error_code ec;
      std::filesystem::remove_all(upload.staging_dir, ec);
      return ToGrpcStatus(received);
    }
    absl::StatusOr<service::AdapterInfo> info = d_.core->UploadAdapter(upload);  // removes the staging directory
    if (!info.ok()) return ToGrpcStatus(info.status());
    ToProto(*info, out);
    return grpc::Status::OK;
  });
}

grpc::Status AdaptersService::ExportAdapter(grpc::ServerContext* c, const v1::ExportAdapterRequest* r,
                                            grpc::ServerWriter<v1::FileChunk>* writer) {
  return HandleRpc(d_, c, "Adapters", "ExportAdapter", Permission::kDeploy, [&](const Principal& who) {
    service::AdapterExportRequest request{r->adapter(), r->format(), r->type(), r->merge(), who.name};
    absl::StatusOr<service::AdapterExport> exported = d_.core->ExportAdapter(request);
    if (!exported.ok()) return ToGrpcStatus(exported.status());
    grpc::Status status = grpc::Status::OK;
    std::string buffer(1 << 20, '\0');
    for (const std::string& name : exported->files) {
      absl::StatusOr<std::string> path = PathInside(exported->dir, "files", name);
      if (!path.ok()) {
        status = ToGrpcStatus(absl::InternalError(path.status().message()));
        break;
      }
      std::ifstream in(*path, std::ios::binary);
      if (!in) {
        status = grpc::Status(grpc::StatusCode::DATA_LOSS, exported->dir + "/" + name + " is missing");
        break;
      }
      v1::FileChunk chunk;
      chunk.set_name(name);
      do {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        if (in.bad()) {
          status = grpc::Status(grpc::StatusCode::DATA_LOSS, "reading " + exported->dir + "/" + name + " failed");
          break;
        }
        chunk.set_data(buffer.data(), static_cast<size_t>(in.gcount()));
        chunk.set_last(!in);
        if (c->IsCancelled() || !writer->Write(chunk)) status = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      } while (in && status.ok());
      if (!status.ok()) break;
    }
    if (exported->temporary) {
      std::error_code ec;
      std::filesystem::remove_all(exported->dir, ec);
    }
    return status;
  });
}

}  // namespace qlorad::server
