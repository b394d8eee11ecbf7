// The dataset store: ingestion (read -> resolve labels -> anonymise -> validate -> split ->
// checksum -> manifest) into an immutable directory per dataset id, and the trainer-facing
// reader, which can open ONLY the train split.
//
// Layout under the root directory:
//   <root>/<dataset_id>/train.jsonl     canonical JSONL (example.h), anonymised, read-only (0444)
//   <root>/<dataset_id>/holdout.jsonl   same, the hold-out split
//   <root>/<dataset_id>/manifest.json   lineage: source path/SHA-256/bytes, format, split params
//                                       (seed, fraction, stratification), file SHA-256s and sizes,
//                                       PII options + report, validation options + report,
//                                       label-consistency policy + report, overrides used
//   <root>/<dataset_id>/SHA256SUMS      `sha256sum -c` compatible
// The manifest holds no timestamps: the same source + options + seed give byte-identical files.
//
// Atomicity: everything is written into <root>/.staging-<id>-<pid>-<host>-<n>/ (<host>: 8
// hex digits of a hash of this machine's host name) and renamed to <root>/<id> only after
// every file is complete and fsynced; on any error the staging directory is removed, so a
// failed ingestion leaves nothing behind. Open() removes stale staging directories of dead
// processes of this host only: on a volume shared by several machines (training ranks on
// other nodes) another host's pid says nothing here.
//
// Memory: text is streamed (one line at a time, twice: source -> staging, staging -> splits);
// what is kept per example is ~50 bytes of hashes, label id and token length, so a source
// larger than RAM works as long as its example COUNT fits (~20 M examples per GiB).
//
// Hold-out access is structural: DatasetStore has no public way to open the hold-out split
// (the manifest names its file and checksum for lineage; this is an API boundary, not a
// filesystem sandbox). Only HoldoutReader (holdout_reader.h) can, and it requires a
// HoldoutKey, which only the evaluation module can construct.
#ifndef QLORAD_CORE_DATA_DATASET_STORE_H_
#define QLORAD_CORE_DATA_DATASET_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/consistency.h"
#include "core/data/example_reader.h"
#include "core/data/pii.h"
#include "core/data/split.h"
#include "core/data/validation.h"
#include "nlohmann/json.hpp"

namespace qlorad::data {

struct IngestOptions {
  std::string source_path;
  std::string dataset_id;  // [A-Za-z0-9][A-Za-z0-9._-]{0,127}
  ReaderOptions reader;
  PiiOptions pii;
  ValidationOptions validation;
  SplitOptions split;
  DisagreementPolicy disagreement_policy = DisagreementPolicy::kRefuse;
  // Explicit override of the "< 200 usable examples" refusal; recorded in the manifest.
  bool allow_small_dataset = false;
};

struct IngestResult {
  std::string dataset_id;
  std::string directory;
  nlohmann::json manifest;
  ValidationReport validation;
  PiiReport pii;
  ConsistencyReport consistency;
  uint64_t train_examples = 0, holdout_examples = 0;
  uint64_t source_bytes = 0;
};

// Reads the examples of one stored split, in stored order.
class SplitReader {
 public:
  // true + *example; false at the end. Errors name the file and line.
  absl::StatusOr<bool> Next(Example* example) {
    if (examples_ == 0) return false;  // an empty split file has nothing to parse
    return reader_->Next(example);
  }
  const std::string& dataset_id() const { return dataset_id_; }
  DatasetFormat format() const { return reader_->format(); }
  uint64_t examples() const { return examples_; }  // as recorded in the manifest

 private:
  friend class DatasetStore;
  SplitReader(std::string id, std::unique_ptr<ExampleReader> reader, uint64_t examples)
      : dataset_id_(std::move(id)), reader_(std::move(reader)), examples_(examples) {}
  std::string dataset_id_;
  std::unique_ptr<ExampleReader> reader_;
  uint64_t examples_;
};

class DatasetStore {
 public:
  // Creates `root` if needed and removes stale staging directories of this host's dead processes.
  static absl::StatusOr<std::unique_ptr<DatasetStore>> Open(const std::string& root);

  // The <host> part of this machine's staging names.
  static std::string HostTag();

  // Ingests options.source_path as options.dataset_id. Errors: INVALID_ARGUMENT for bad
  // input (all bad lines listed, see example_reader.h) or options; ALREADY_EXISTS if the id
  // is taken; FAILED_PRECONDITION for a refusal (too few usable examples without the
  // override, unresolved annotator disagreements). On error nothing is left under root.
  absl::StatusOr<IngestResult> Ingest(const IngestOptions& options) const;

  // The manifest of a stored dataset. NOT_FOUND if absent.
  absl::StatusOr<nlohmann::json> GetManifest(const std::string& dataset_id) const;
  // Stored dataset ids, sorted.
  absl::StatusOr<std::vector<std::string>> List() const;

  // Trainer-facing: opens the TRAIN split of `dataset_id` after checking its SHA-256 against
  // the manifest (DATA_LOSS on mismatch). There is deliberately no way to ask for the hold-out.
  absl::StatusOr<std::unique_ptr<SplitReader>> OpenTrain(const std::string& dataset_id) const;

  const std::string& root() const { return root_; }
  // root/<dataset_id> after the path-name check (core/util/path_name.h): INVALID_ARGUMENT
  // naming dataset_id for a bad id or one that resolves outside the root. Creates nothing.
  absl::StatusOr<std::string> DatasetDir(const std::string& dataset_id) const;

 private:
  friend class HoldoutReader;
  explicit DatasetStore(std::string root) : root_(std::move(root)) {}
  absl::StatusOr<std::unique_ptr<SplitReader>> OpenSplit(const std::string& dataset_id, const std::string& split) const;

  std::string root_;
};

// INVALID_ARGUMENT naming dataset_id if it is not [A-Za-z0-9][A-Za-z0-9._-]{0,127}
// (core/util/path_name.h's ValidatePathName with the default rules).
absl::Status ValidateDatasetId(const std::string& dataset_id);

}  // namespace qlorad::data

#endif  // QLORAD_CORE_DATA_DATASET_STORE_H_
