// A model's identity: SHA-256 over the canonical config, every tensor's name,
// dtype and shape (sorted by name) and its bytes. Adapters record the
// fingerprint of the base they were trained on and are checked against it.
//
// Computing it reads every weight byte once, so the result is cached in
// `<model_dir>/.qlorad-fingerprint.json`, keyed by the size and mtime of each
// weight file; a changed file invalidates the cache. An unwritable directory
// only costs the cache.
#ifndef QLORAD_CORE_MODEL_FINGERPRINT_H_
#define QLORAD_CORE_MODEL_FINGERPRINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/config.h"

namespace qlorad {

inline constexpr char kFingerprintCacheFile[] = ".qlorad-fingerprint.json";

// "sha256:<hex>". `model_dir` is where the cache lives ("" disables caching).
absl::StatusOr<std::string> ModelFingerprint(const std::string& model_dir, const ModelConfig& config,
                                             const Checkpoint& checkpoint);

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_FINGERPRINT_H_
