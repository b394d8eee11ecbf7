// Bearer-token authentication, role checks and per-token rate limits.
//
// Tokens file (and/or the QLORAD_TOKENS environment variable, same format), one per line:
//   <name> <role> sha256:<hex of SHA-256 of the token>
// Only hashes are stored at rest (`qlorad hash-token` prints the line for a token).
// '#' starts a comment. Roles: admin (everything), trainer (datasets, jobs, evaluations),
// deployer (adapters, reviews), inference (inference), reviewer (reviews: the review
// console's judgements and nothing else), viewer (reads); every role can read.
// Reload() (SIGHUP) swaps the table atomically; a bad file keeps the old table.
// A presented token is hashed (SHA-256) and its digest compared with every configured
// digest in constant time (CRYPTO_memcmp, no early exit): neither the token nor the
// table's contents show in the time a refusal takes (only the table's size does).
#ifndef QLORAD_SERVER_DAEMON_AUTH_H_
#define QLORAD_SERVER_DAEMON_AUTH_H_

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"

namespace qlorad::server {

enum class Role { kViewer, kInference, kTrainer, kDeployer, kAdmin, kReviewer };
// What an RPC needs: kRead is satisfied by every role; kReview (interactive review) by
// reviewer, deployer and admin.
enum class Permission { kRead, kInference, kTrain, kDeploy, kReview };

struct Principal {
  std::string name;
  Role role = Role::kViewer;
};

struct AuthOptions {
  std::string tokens_file;
  bool disabled = false;       // --no-auth: every caller is "anonymous" admin (development only)
  double rate_per_second = 0;  // per token; 0 = unlimited
  double burst = 0;            // bucket size; 0 = max(1, 2 * rate)
};

class Authenticator {
 public:
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const AuthOptions& options);
  absl::Status Reload();
  // UNAUTHENTICATED (no/unknown token), PERMISSION_DENIED (role), RESOURCE_EXHAUSTED (rate).
  absl::StatusOr<Principal> Authorize(const grpc::ServerContext& context, Permission needed, const char* method);
  // The same for any front end: `authorization` is the header's value ("Bearer <token>"),
  // nullptr when the request has none.
  absl::StatusOr<Principal> AuthorizeHeader(const std::string* authorization, Permission needed, const char* method);
  // Whether `role` may make calls that need `needed` (no rate token is taken).
  static bool Allows(Role role, Permission needed);
  size_t token_count() const;

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
  };
  explicit Authenticator(AuthOptions options) : options_(std::move(options)) {}
  absl::Status TakeRateToken(const std::string& name);
  // Sets *principal to the one whose digest equals SHA-256(token), comparing in constant
  // time against every entry; false when none matches.
  bool FindPrincipal(const std::string& token, Principal* principal) const;

  AuthOptions options_;
  mutable std::mutex mu_;
  struct TokenEntry {
    std::array<unsigned char, 32> digest;  // SHA-256 of the token
    Principal principal;
  };
  std::vector<TokenEntry> tokens_;
  std::map<std::string, Bucket> buckets_;
};

absl::StatusOr<Role> ParseRole(const std::string& name);
const char* RoleName(Role role);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_AUTH_H_
