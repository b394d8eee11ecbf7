// AdapterCatalog: adapters that come from outside — ImportAdapter (a directory under the
// import root on the server host) and UploadAdapter (files streamed by a client). Both
// stage the files under uploads/, validate them against the resident base exactly as a
// load does, and only then move them under adapters/<name>/<version> and register them.
#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/adapter/peft_config.h"
#include "core/service/adapter_catalog.h"
#include "core/service/ids.h"
#include "core/util/path_name.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"

namespace qlorad::service {
namespace {

namespace fs = std::filesystem;

// The files an adapter directory may bring; the first two are required.
constexpr std::array<const char*, 4> kAdapterFiles = {"adapter_config.json", "adapter_model.safetensors",
                                                      "training_run.json", "README.md"};

bool IsAcceptedFile(const std::string& name) {
  return std::any_of(kAdapterFiles.begin(), kAdapterFiles.end(), [&](const char* f) { return name == f; });
}

// True when `path` (canonical) is `root` (canonical) or lies below it.
bool IsInside(const fs::path& path, const fs::path& root) { return IsPathInside(path.string(), root.string()); }

absl::Status CheckFileName(const std::string& name, const std::string& field) {
  QLORAD_RETURN_IF_ERROR(ValidatePathName(field, name));
  if (!IsAcceptedFile(name))
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": '", name, "' is not an adapter file (accepted: adapter_config.json, adapter_model.safetensors, ",
        "training_run.json, README.md", absl::EndsWith(name, ".bin") ? "; pickled .bin weights are refused: save as safetensors" : "",
        ")"));
  return absl::OkStatus();
}

absl::Status CheckSha256(const std::string& hex, const std::string& field) {
  if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be 64 hex digits (the file's SHA-256), got '", hex, "'"));
  return absl::OkStatus();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// `path` resolved (relative paths against `root`, symlinks followed) and checked to lie
// inside `root`; then each adapter file in it, so a file symlinked out is refused too.
absl::StatusOr<fs::path> ResolveImportDir(const std::string& root, const std::string& path) {
  if (root.empty())
    return absl::FailedPreconditionError(
        "ImportAdapter is disabled: the daemon runs without --import-root (hint: start qlorad with --import-root DIR "
        "and place the adapter below DIR, or send it with UploadAdapter / qloractl adapters upload)");
  if (path.empty()) return absl::InvalidArgumentError("path: must name a PEFT adapter directory below the import root");
  if (path.find('\0') != std::string::npos) return absl::InvalidArgumentError("path: contains NUL");
  std::error_code ec;
  const fs::path requested = fs::path(path).is_absolute() ? fs::path(path) : fs::path(root) / path;
  const fs::path resolved = fs::weakly_canonical(requested, ec);
  if (ec || !IsInside(resolved, root))
    return absl::PermissionDeniedError(absl::StrCat("path: '", path, "' resolves to '", resolved.string(),
                                                    "', outside the import root '", root,
                                                    "' (symlinks are resolved; hint: place the adapter below --import-root)"));
  if (!fs::is_directory(resolved, ec))
    return absl::NotFoundError(absl::StrCat("path: '", path, "' is not a directory below the import root"));
  for (const char* file : kAdapterFiles) {
    const fs::path f = resolved / file;
    if (!fs::exists(fs::symlink_status(f, ec))) continue;
    const fs::path target = fs::weakly_canonical(f, ec);
    if (ec || !IsInside(target, root))
      return absl::PermissionDeniedError(absl::StrCat("path: '", path, "/", file, "' resolves to '", target.string(),
                                                      "', outside the import root '", root, "' (symlinks out are refused)"));
  }
  return resolved;
}

}  // namespace

absl::StatusOr<std::string> AdapterCatalog::NewStagingDir(const std::string& prefix) {
  const std::string dir = absl::StrCat(upload_dir(), "/", prefix, "-", NewId("s"));
  std::error_code ec;
  if (!fs::create_directory(dir, ec) || ec)
    return absl::InternalError(absl::StrCat("cannot create staging directory ", dir, ": ", ec.message()));
  return dir;
}

absl::StatusOr<AdapterInfo> AdapterCatalog::CommitStagedAdapter(const std::string& name, const std::string& staged,
                                                                 const std::string& label, bool allow_base_mismatch,
                                                                 const std::string& actor, nlohmann::json details) {
  std::error_code ec;
  absl::MutexLock lock(&commit_mu_);
  std::string dir;
  AdapterRow row;
  absl::Status registered = [&]() -> absl::Status {
    QLORAD_ASSIGN_OR_RETURN(int64_t version, store_->NextVersion(name));
    const std::string id = absl::StrCat(name, "@", version);
    if (engine_->IsLoaded(id))
      return absl::AlreadyExistsError(absl::StrCat("adapter '", id, "' is still loaded on the serving engine"));
    // Validate against the resident base by loading from the staging directory; errors
    // name the adapter as the caller knows it, not the staging path.
    absl::Status valid = engine_->LoadAdapter(id, staged, allow_base_mismatch);
    if (!valid.ok()) return absl::Status(valid.code(), absl::StrReplaceAll(valid.message(), {{staged, label}}));
    auto placed = engine_->FindAdapter(id);
    (void)engine_->UnloadAdapter(id);
    // A deleted version's files stay where they are: never overwrite them.
    QLORAD_ASSIGN_OR_RETURN(const std::string parent, PathInside(options_.state_dir + "/adapters", "name", name, kAdapterNameRules));
    fs::create_directories(parent, ec);
    dir = absl::StrCat(parent, "/", version);
    for (int n = 2; fs::exists(dir, ec); ++n) dir = absl::StrCat(parent, "/", version, "-", n);
    fs::rename(staged, dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("moving ", staged, " to ", dir, ": ", ec.message()));
    row = AdapterRow{id, name, version, "", dir, placed ? placed->base_fingerprint : "", "", Now(), false};
    details["allow_base_mismatch"] = allow_base_mismatch;
    return store_->Register(row, actor.empty() ? "system" : actor, details);  // row + lifecycle: one transaction
  }();
  if (!registered.ok()) {  // nothing stays behind: no row, no files
    fs::remove_all(staged, ec);
    if (!dir.empty()) fs::remove_all(dir, ec);
    return registered;
  }
  return Describe(row);
}

absl::StatusOr<AdapterInfo> AdapterCatalog::Import(const std::string& name, const std::string& path,
                                                           bool allow_base_mismatch, const std::string& actor) {
  QLORAD_RETURN_IF_ERROR(ValidateAdapterName(name, "name"));
  QLORAD_ASSIGN_OR_RETURN(fs::path source, ResolveImportDir(import_root_, path));
  QLORAD_RETURN_IF_ERROR(PeftWeightsPath(source.string()).status());  // adapter_model.bin only: refused with a hint
  QLORAD_ASSIGN_OR_RETURN(std::string staged, NewStagingDir("import"));
  std::error_code ec;
  for (const char* file : kAdapterFiles) {
    if (!fs::exists(source / file, ec)) continue;
    // Checked again on the path actually copied: a file swapped for a symlink after
    // ResolveImportDir must not pull anything from outside the root into the export.
    const fs::path target = fs::canonical(source / file, ec);
    if (ec || !IsInside(target, import_root_) || !fs::is_regular_file(target, ec)) {
      fs::remove_all(staged, ec);
      return absl::PermissionDeniedError(absl::StrCat("path: '", (source / file).string(),
                                                      "' is not a regular file inside the import root"));
    }
    fs::copy_file(target, fs::path(staged) / file, ec);
    if (ec) {
      fs::remove_all(staged, ec);
      return absl::InternalError(absl::StrCat("path: copying ", (source / file).string(), ": ", ec.message()));
    }
  }
  return CommitStagedAdapter(name, staged, source.string(), allow_base_mismatch, actor, {{"imported_from", source.string()}});
}

absl::Status AdapterCatalog::CheckAdapterUploadHeader(const AdapterUpload& upload) const {
  QLORAD_RETURN_IF_ERROR(ValidateAdapterName(upload.name, "header.name"));
  std::set<std::string> seen;
  int64_t total = 0;
  for (size_t i = 0; i < upload.files.size(); ++i) {
    const AdapterFileSpec& f = upload.files[i];
    const std::string field = absl::StrCat("header.files[", i, "]");
    QLORAD_RETURN_IF_ERROR(CheckFileName(f.name, field + ".name"));
    if (!seen.insert(f.name).second)
      return absl::InvalidArgumentError(absl::StrCat(field, ".name: '", f.name, "' is listed twice"));
    if (f.size <= 0) return absl::InvalidArgumentError(absl::StrCat(field, ".size: must be > 0, got ", f.size));
    QLORAD_RETURN_IF_ERROR(CheckSha256(f.sha256, field + ".sha256"));
    if (f.size > options_.max_adapter_upload_bytes - total)
      return absl::ResourceExhaustedError(absl::StrCat(field, ".size: the upload exceeds the limit of ",
                                                       options_.max_adapter_upload_bytes,
                                                       " bytes (hint: --max-adapter-upload-mb)"));
    total += f.size;
  }
  for (const char* required : {"adapter_config.json", "adapter_model.safetensors"})
    if (seen.count(required) == 0)
      return absl::InvalidArgumentError(absl::StrCat("header.files: ", required, " is required"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> AdapterCatalog::BeginUpload(const AdapterUpload& upload) {
  QLORAD_RETURN_IF_ERROR(CheckAdapterUploadHeader(upload));
  return NewStagingDir("adapter");
}

absl::StatusOr<AdapterInfo> AdapterCatalog::Upload(const AdapterUpload& upload) {
  std::error_code ec;
  const fs::path staged = fs::weakly_canonical(upload.staging_dir, ec);
  if (ec || staged.parent_path() != fs::weakly_canonical(upload_dir(), ec))
    return absl::InternalError(absl::StrCat("staging_dir '", upload.staging_dir, "' is not an upload staging directory"));
  absl::Status verified = [&]() -> absl::Status {
    QLORAD_RETURN_IF_ERROR(CheckAdapterUploadHeader(upload));
    for (size_t i = 0; i < upload.files.size(); ++i) {
      const AdapterFileSpec& f = upload.files[i];
      const fs::path file = staged / f.name;
      const int64_t got = fs::is_regular_file(file, ec) ? static_cast<int64_t>(fs::file_size(file, ec)) : 0;
      if (got != f.size)
        return absl::InvalidArgumentError(absl::StrCat(f.name, ": ", got < f.size ? "truncated" : "too long", ": got ", got,
                                                       " of ", f.size, " bytes (header.files[", i, "].size)"));
      QLORAD_ASSIGN_OR_RETURN(std::string sha, Sha256File(file.string()));
      if (sha != Lower(f.sha256))
        return absl::InvalidArgumentError(absl::StrCat("header.files[", i, "].sha256: ", f.name, " has SHA-256 ", sha,
                                                       ", the header says ", Lower(f.sha256), " (corrupted in transit?)"));
    }
    for (const auto& entry : fs::directory_iterator(staged, ec))  // nothing but the declared files
      if (std::none_of(upload.files.begin(), upload.files.end(),
                       [&](const AdapterFileSpec& f) { return entry.path().filename() == f.name; }))
        return absl::InvalidArgumentError(absl::StrCat("chunk.name: '", entry.path().filename().string(),
                                                       "' is not declared in header.files"));
    return absl::OkStatus();
  }();
  if (!verified.ok()) {
    fs::remove_all(staged, ec);
    return verified;
  }
  nlohmann::json files = nlohmann::json::array();
  for (const AdapterFileSpec& f : upload.files)
    files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", Lower(f.sha256)}});
  // The version is assigned at commit: staged bytes are validated first, so nothing is stored for a refusal.
  return CommitStagedAdapter(upload.name, staged.string(), "upload:" + upload.name, upload.allow_base_mismatch, upload.actor,
                             {{"uploaded", true}, {"files", files}});
}

}  // namespace qlorad::service
