#include "server/daemon/listen_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace qlorad::server {
namespace {

// The host part of HOST:PORT or [HOST]:PORT; false when there is no port separator.
bool SplitHost(absl::string_view address, std::string* host) {
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':') return false;
    *host = std::string(address.substr(1, close - 1));
    return true;
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return false;
  *host = std::string(address.substr(0, colon));
  return true;
}

bool IsLoopbackHost(const std::string& host) {
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(v6.s6_addr, kLoopback, 16) == 0) return true;
    return std::memcmp(v6.s6_addr, kMappedPrefix, 12) == 0 && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  absl::string_view a = address;
  if (absl::StartsWith(a, "unix:") || absl::StartsWith(a, "unix-abstract:")) return true;
  if (absl::ConsumePrefix(&a, "ipv4:") || absl::ConsumePrefix(&a, "ipv6:")) {
    // gRPC URIs: ipv4:127.0.0.1:50051, ipv6:[::1]:50051 (one address; lists are refused).
    if (absl::StrContains(a, ",")) return false;
  }
  std::string host;
  return SplitHost(a, &host) && IsLoopbackHost(host);
}

absl::Status CheckNoAuthAddress(bool no_auth, const char* flag, const std::string& address) {
  if (!no_auth || address.empty() || IsLoopbackAddress(address)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--no-auth refuses ", flag, " ", address,
      ": without authentication every caller is admin, so the daemon listens only on loopback "
      "(hint: use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT, or drop --no-auth and use --tokens-file)"));
}

}  // namespace qlorad::server
