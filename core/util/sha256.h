// Incremental SHA-256 (OpenSSL's libcrypto underneath). Used for dataset
// checksums, model fingerprints and artifact integrity.
#ifndef QLORAD_CORE_UTIL_SHA256_H_
#define QLORAD_CORE_UTIL_SHA256_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace qlorad {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the lowercase hex digest. The object must not be updated afterwards.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Hex SHA-256 of a byte string.
std::string Sha256Hex(std::string_view data);

// Hex SHA-256 of a file's contents, streamed.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_SHA256_H_
