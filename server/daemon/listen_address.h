// Which listen addresses are local to the host, and the rule that an unauthenticated
// daemon (--no-auth) listens on nothing else.
#ifndef QLORAD_SERVER_DAEMON_LISTEN_ADDRESS_H_
#define QLORAD_SERVER_DAEMON_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/status.h"

namespace qlorad::server {

// True when `address` ("HOST:PORT", "[V6]:PORT", gRPC's "ipv4:"/"ipv6:" forms, or a
// "unix:" / "unix-abstract:" socket) can only be reached from this host: HOST is
// "localhost", an IPv4 address in 127.0.0.0/8, "::1" or "::ffff:127.x.y.z". Anything
// else (0.0.0.0, "::", a host name, an interface address, an empty host) is false;
// so is a string that is not one of these forms.
bool IsLoopbackAddress(const std::string& address);

// OK unless `no_auth` and `address` is set (non-empty) and not loopback; then
// INVALID_ARGUMENT naming `flag` and the address, with a hint.
absl::Status CheckNoAuthAddress(bool no_auth, const char* flag, const std::string& address);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_LISTEN_ADDRESS_H_
