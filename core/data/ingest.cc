// DatasetStore::Ingest: the ingestion pipeline (see dataset_store.h).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/data/dataset_store.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"

namespace qlorad::data {
namespace {
namespace fs = std::filesystem;

constexpr char kSchema[] = "qlorad.dataset.v1";

// Removes the staging directory unless committed.
class StagingDir {
 public:
  explicit StagingDir(std::string path) : path_(std::move(path)) {}
  ~StagingDir() {
    if (!committed_) {
      std::error_code ec;
      fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
      fs::remove_all(path_, ec);
    }
  }
  const std::string& path() const { return path_; }
  void Commit() { committed_ = true; }

 private:
  std::string path_;
  bool committed_ = false;
};

// Buffered writer that hashes what it writes and fsyncs on Close().
class HashingWriter {
 public:
  static absl::StatusOr<std::unique_ptr<HashingWriter>> Create(const std::string& path, bool hash = true) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return ErrnoStatus(errno, "cannot create", path);
    auto writer = std::unique_ptr<HashingWriter>(new HashingWriter(path, f));
    writer->hash_ = hash;
    return writer;
  }
  ~HashingWriter() {
    if (file_) std::fclose(file_);
  }
  absl::Status WriteLine(std::string_view line) {
    if (hash_) {
      sha_.Update(line);
      sha_.Update("\n");
    }
    bytes_ += line.size() + 1;
    ++lines_;
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fputc('\n', file_) == EOF) {
      return ErrnoStatus(errno, "cannot write", path_);
    }
    return absl::OkStatus();
  }
  absl::Status Close() {
    int err = 0;  // the first failure's errno (a full volume shows up here: the buffer is 1 MiB)
    if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) err = errno;
    if (std::fclose(file_) != 0 && err == 0) err = errno;
    file_ = nullptr;
    if (err != 0) return ErrnoStatus(err, "cannot flush", path_);
    digest_ = sha_.HexDigest();
    ::chmod(path_.c_str(), 0444);  // immutable from here on
    return absl::OkStatus();
  }
  const std::string& digest() const { return digest_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t lines() const { return lines_; }

 private:
  HashingWriter(std::string path, std::FILE* f) : path_(std::move(path)), file_(f) {
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  std::string path_;
  std::FILE* file_;
  Sha256 sha_;
  std::string digest_;
  uint64_t bytes_ = 0, lines_ = 0;
  bool hash_ = true;
};

nlohmann::json Distribution(const std::vector<std::string>& names, const std::vector<uint64_t>& counts) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < names.size(); ++i) j[names[i]] = counts[i];
  return j;
}

}  // namespace

absl::StatusOr<IngestResult> DatasetStore::Ingest(const IngestOptions& options) const {
  QLORAD_ASSIGN_OR_RETURN(const std::string final_dir, DatasetDir(options.dataset_id));
  QLORAD_RETURN_IF_ERROR(options.split.Validate());
  if (fs::exists(final_dir)) {
    return absl::AlreadyExistsError(absl::StrCat("dataset '", options.dataset_id, "' already exists in ", root_,
                                                 " (hint: datasets are immutable; ingest under a new id)"));
  }
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<PiiAnonymizer> anonymizer, PiiAnonymizer::Create(options.pii));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<Validator> validator, Validator::Create(options.validation));
  QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<ExampleReader> reader,
                          ExampleReader::Open(options.source_path, options.reader));

  static std::atomic<int> counter{0};
  StagingDir staging(absl::StrCat(root_, "/.staging-", options.dataset_id, "-", ::getpid(), "-",
                                 DatasetStore::HostTag(), "-", counter++));
  if (::mkdir(staging.path().c_str(), 0755) != 0)
    return ErrnoStatus(errno, "cannot create staging directory", staging.path());

  // Pass 1: read, resolve labels, anonymise, validate; stage the kept (anonymised) lines.
  ConsistencyChecker consistency(options.disagreement_policy);
  SplitPlanner planner(options.split);
  PiiReport pii_report;
  std::vector<std::string> label_names;
  std::map<std::string, uint32_t> label_index;
  std::vector<uint32_t> label_of;
  const std::string all_path = staging.path() + "/all.jsonl";
  {
    QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<HashingWriter> all, HashingWriter::Create(all_path, /*hash=*/false));
    Example example;
    for (;;) {
      QLORAD_ASSIGN_OR_RETURN(bool got, reader->Next(&example));
      if (!got) break;
      if (!consistency.Resolve(&example)) continue;
      PlaceholderMap placeholders;
      ForEachTextField(example,
                       [&](std::string_view, std::string& value) { anonymizer->Anonymize(&value, &placeholders); });
      anonymizer->Record(placeholders, example.source_line, &pii_report);
      if (validator->Add(example) != Validator::Verdict::kKeep) continue;
      const uint64_t near_key = NormalizedHash64(InputSide(example), /*punctuation_is_space=*/true);
      consistency.AddNearDuplicateKey(near_key, example);
      const bool classification = example.format == DatasetFormat::kClassification;
      planner.Add(near_key, classification ? example.label : std::string());
      auto [it, added] = label_index.try_emplace(classification ? example.label : std::string(),
                                                 static_cast<uint32_t>(label_names.size()));
      if (added) label_names.push_back(it->first);
      label_of.push_back(it->second);
      QLORAD_RETURN_IF_ERROR(all->WriteLine(ExampleToJsonLine(example)));
    }
    QLORAD_RETURN_IF_ERROR(all->Close());
  }
  const std::string source_sha256 = reader->source_sha256();
  QLORAD_RETURN_IF_ERROR(consistency.CheckResolved(options.source_path));
  IngestResult result;
  result.validation = validator->Finish();
  result.consistency = consistency.Finish();
  result.pii = pii_report;
  result.source_bytes = reader->bytes_read();
  const bool small_override_used = result.validation.refused && options.allow_small_dataset;
  if (result.validation.refused && !options.allow_small_dataset) {
    return absl::FailedPreconditionError(absl::StrCat(options.source_path, ": ", result.validation.refusal));
  }

  // Pass 2: distribute the staged lines into train / hold-out.
  std::vector<bool> holdout = planner.Plan();
  std::vector<uint64_t> train_labels(label_names.size()), holdout_labels(label_names.size());
  QLORAD_ASSIGN_OR_RETURN(auto train, HashingWriter::Create(staging.path() + "/train.jsonl"));
  QLORAD_ASSIGN_OR_RETURN(auto hold, HashingWriter::Create(staging.path() + "/holdout.jsonl"));
  {
    QLORAD_ASSIGN_OR_RETURN(std::unique_ptr<ChunkedFile> staged, ChunkedFile::Open(all_path, false));
    std::string line;
    bool too_long = false;
    for (size_t i = 0;; ++i) {
      QLORAD_ASSIGN_OR_RETURN(bool got, staged->ReadLine(size_t{1} << 40, &line, &too_long));
      if (!got) break;
      if (i >= holdout.size()) return absl::InternalError("staged dataset has more lines than planned");
      QLORAD_RETURN_IF_ERROR((holdout[i] ? hold : train)->WriteLine(line));
      ++(holdout[i] ? holdout_labels : train_labels)[label_of[i]];
    }
  }
  QLORAD_RETURN_IF_ERROR(train->Close());
  QLORAD_RETURN_IF_ERROR(hold->Close());
  if (::unlink(all_path.c_str()) != 0) return ErrnoStatus(errno, "cannot remove", all_path);
  result.train_examples = train->lines();
  result.holdout_examples = hold->lines();

  // Manifest (lineage).
  const bool classification = reader->format() == DatasetFormat::kClassification;
  nlohmann::json m;
  m["schema"] = kSchema;
  m["dataset_id"] = options.dataset_id;
  m["format"] = FormatName(reader->format());
  m["source"] = {{"path", options.source_path}, {"sha256", source_sha256}, {"bytes", result.source_bytes}};
  auto file_json = [&](const HashingWriter& w, const char* name, const std::vector<uint64_t>& labels) {
    nlohmann::json f = {{"name", name}, {"sha256", w.digest()}, {"bytes", w.bytes()}, {"examples", w.lines()}};
    if (classification) f["label_distribution"] = Distribution(label_names, labels);
    return f;
  };
  m["files"] = {{"train", file_json(*train, "train.jsonl", train_labels)},
                {"holdout", file_json(*hold, "holdout.jsonl", holdout_labels)}};
  m["split"] = options.split.ToJson();
  m["split"]["stratified_by_label"] = classification && options.split.stratify;
  m["anonymization"] = options.pii.ToJson();
  m["pii_report"] = pii_report.ToJson();
  m["validation"] = {{"options", options.validation.ToJson()}, {"report", result.validation.ToJson()}};
  m["label_consistency"] = result.consistency.ToJson();
  m["label_consistency"]["policy"] = PolicyName(options.disagreement_policy);
  m["overrides"] = {{"allow_small_dataset", options.allow_small_dataset},
                    {"small_dataset_override_used", small_override_used}};
  m["reader"] = {{"max_line_bytes", options.reader.max_line_bytes}, {"max_errors", options.reader.max_errors}};
  result.manifest = m;
  QLORAD_RETURN_IF_ERROR(WriteFileAtomically(staging.path() + "/manifest.json", m.dump(2) + "\n"));
  QLORAD_RETURN_IF_ERROR(
      WriteFileAtomically(staging.path() + "/SHA256SUMS",
                          absl::StrCat(train->digest(), "  train.jsonl\n", hold->digest(), "  holdout.jsonl\n")));
  ::chmod((staging.path() + "/manifest.json").c_str(), 0444);
  ::chmod((staging.path() + "/SHA256SUMS").c_str(), 0444);
  QLORAD_RETURN_IF_ERROR(SyncDirectory(staging.path()));

  // Commit: one rename makes the dataset visible.
  if (::rename(staging.path().c_str(), final_dir.c_str()) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) {
      return absl::AlreadyExistsError(absl::StrCat("dataset '", options.dataset_id, "' was created concurrently"));
    }
    return ErrnoStatus(errno, "cannot move dataset into place", final_dir);
  }
  staging.Commit();
  QLORAD_RETURN_IF_ERROR(SyncDirectory(root_));
  result.dataset_id = options.dataset_id;
  result.directory = final_dir;
  return result;
}

}  // namespace qlorad::data
