// server/daemon/listen_address.h: loopback detection and the --no-auth bind rule.
#include "server/daemon/listen_address.h"

#include "tests/testing/status_matchers.h"

namespace qlorad::server {
namespace {

using ::qlorad::testing::IsOk;
using ::qlorad::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(IsLoopbackAddress, LoopbackForms) {
  for (const char* a : {"127.0.0.1:50051", "127.1.2.3:1", "localhost:9464", "LOCALHOST:1", "[::1]:50051",
                        "[::ffff:127.0.0.1]:8000", "ipv4:127.0.0.1:50051", "ipv6:[::1]:50051", "unix:/run/qlorad.sock",
                        "unix-abstract:qlorad"})
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
}

TEST(IsLoopbackAddress, EverythingElse) {
  for (const char* a : {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.5:50051", "192.168.1.1:9464",
                        "127.evil.example:80", "localhost.evil.example:80", "127.0.0.1.nip.io:80", "example.com:443",
                        "[::2]:1", "[::ffff:10.0.0.1]:1", "128.0.0.1:1", "127.0.0.1", "", "ipv4:127.0.0.1:1,10.0.0.1:1",
                        "[::1:50051"})
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
}

TEST(CheckNoAuthAddress, RefusesOnlyNonLoopbackWithoutAuth) {
  EXPECT_THAT(CheckNoAuthAddress(true, "--listen-address", "127.0.0.1:50051"), IsOk());
  EXPECT_THAT(CheckNoAuthAddress(true, "--metrics-address", ""), IsOk());  // the listener is off
  EXPECT_THAT(CheckNoAuthAddress(false, "--listen-address", "0.0.0.0:50051"), IsOk());
  EXPECT_THAT(CheckNoAuthAddress(true, "--metrics-address", "0.0.0.0:9464"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--no-auth"), HasSubstr("--metrics-address 0.0.0.0:9464"), HasSubstr("loopback"))));
}

}  // namespace
}  // namespace qlorad::server
