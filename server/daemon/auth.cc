#include "server/daemon/auth.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"

namespace qlorad::server {
namespace {

absl::Status ParseTokens(const std::string& text, const std::string& source, std::map<std::string, Principal>& out) {
  int line_number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::string_view line = absl::StripAsciiWhitespace(raw.substr(0, raw.find('#')));
    if (line.empty()) continue;
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (fields.size() != 3 || !absl::StartsWith(fields[2], "sha256:") || fields[2].size() != 7 + 64 ||
        !std::all_of(fields[2].begin() + 7, fields[2].end(), [](char c) { return absl::ascii_isxdigit(c); }))
      return absl::InvalidArgumentError(absl::StrCat(source, " line ", line_number,
                                                     ": expected '<name> <role> sha256:<64 hex>' (hint: qlorad hash-token)"));
    auto role = ParseRole(fields[1]);
    if (!role.ok()) return absl::InvalidArgumentError(absl::StrCat(source, " line ", line_number, ": ", role.status().message()));
    out[absl::AsciiStrToLower(fields[2].substr(7))] = Principal{fields[0], *role};
  }
  return absl::OkStatus();
}

}  // namespace

bool Authenticator::Allows(Role role, Permission needed) {
  switch (needed) {
    case Permission::kRead: return true;
    case Permission::kInference: return role == Role::kInference || role == Role::kAdmin;
    case Permission::kTrain: return role == Role::kTrainer || role == Role::kAdmin;
    case Permission::kDeploy: return role == Role::kDeployer || role == Role::kAdmin;
    case Permission::kReview: return role == Role::kReviewer || role == Role::kDeployer || role == Role::kAdmin;
  }
  return false;
}

absl::StatusOr<Role> ParseRole(const std::string& name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "trainer") return Role::kTrainer;
  if (name == "deployer") return Role::kDeployer;
  if (name == "inference") return Role::kInference;
  if (name == "reviewer") return Role::kReviewer;
  if (name == "viewer") return Role::kViewer;
  return absl::InvalidArgumentError(
      absl::StrCat("role '", name, "' is not admin, trainer, deployer, inference, reviewer or viewer"));
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kTrainer: return "trainer";
    case Role::kDeployer: return "deployer";
    case Role::kInference: return "inference";
    case Role::kReviewer: return "reviewer";
    default: return "viewer";
  }
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(const AuthOptions& options) {
  std::unique_ptr<Authenticator> auth(new Authenticator(options));
  if (!options.disabled) {
    auto status = auth->Reload();
    if (!status.ok()) return status;
    if (auth->token_count() == 0)
      return absl::FailedPreconditionError("no tokens configured (hint: --tokens-file or QLORAD_TOKENS; --no-auth for development)");
  }
  return auth;
}

absl::Status Authenticator::Reload() {
  std::map<std::string, Principal> table;
  if (!options_.tokens_file.empty()) {
    auto text = ReadFileToString(options_.tokens_file);
    if (!text.ok()) return text.status();
    if (auto s = ParseTokens(*text, options_.tokens_file, table); !s.ok()) return s;
  }
  if (const char* env = std::getenv("QLORAD_TOKENS"); env != nullptr) {
    if (auto s = ParseTokens(env, "QLORAD_TOKENS", table); !s.ok()) return s;
  }
  std::vector<TokenEntry> tokens;
  for (const auto& [hex, principal] : table) {
    TokenEntry entry{{}, principal};
    const std::string bytes = absl::HexStringToBytes(hex);
    std::copy(bytes.begin(), bytes.end(), entry.digest.begin());
    tokens.push_back(std::move(entry));
  }
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ = std::move(tokens);
  return absl::OkStatus();
}

size_t Authenticator::token_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_.size();
}

bool Authenticator::FindPrincipal(const std::string& token, Principal* principal) const {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  std::lock_guard<std::mutex> lock(mu_);
  const TokenEntry* found = nullptr;
  for (const TokenEntry& entry : tokens_) {  // every entry is compared: no early exit
    const bool equal = CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0;
    if (equal && found == nullptr) found = &entry;
  }
  if (found == nullptr) return false;
  *principal = found->principal;
  return true;
}

absl::Status Authenticator::TakeRateToken(const std::string& name) {
  if (options_.rate_per_second <= 0) return absl::OkStatus();
  const double burst = options_.burst > 0 ? options_.burst : std::max(1.0, 2 * options_.rate_per_second);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = buckets_.try_emplace(name, Bucket{burst, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst, b.tokens + std::chrono::duration<double>(now - b.refilled).count() * options_.rate_per_second);
  b.refilled = now;
  if (b.tokens < 1)
    return absl::ResourceExhaustedError(absl::StrCat("rate limit of ", options_.rate_per_second, " requests/s for '", name,
                                                     "' exceeded (hint: slow down and retry)"));
  b.tokens -= 1;
  return absl::OkStatus();
}

absl::StatusOr<Principal> Authenticator::Authorize(const grpc::ServerContext& context, Permission needed,
                                                   const char* method) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return AuthorizeHeader(nullptr, needed, method);
  const std::string value(it->second.data(), it->second.size());
  return AuthorizeHeader(&value, needed, method);
}

absl::StatusOr<Principal> Authenticator::AuthorizeHeader(const std::string* authorization, Permission needed,
                                                         const char* method) {
  if (options_.disabled) return Principal{"anonymous", Role::kAdmin};
  if (authorization == nullptr)
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' (hint: --token or QLORAD_TOKEN)");
  if (!absl::StartsWith(*authorization, "Bearer ")) return absl::UnauthenticatedError("authorization is not 'Bearer <token>'");
  Principal principal;
  if (!FindPrincipal(authorization->substr(7), &principal)) return absl::UnauthenticatedError("unknown token");
  if (!Allows(principal.role, needed))
    return absl::PermissionDeniedError(absl::StrCat("'", principal.name, "' (role ", RoleName(principal.role),
                                                    ") may not call ", method));
  if (auto s = TakeRateToken(principal.name); !s.ok()) return s;
  return principal;
}

}  // namespace qlorad::server
