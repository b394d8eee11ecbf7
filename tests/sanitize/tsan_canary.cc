// Shows that the TSan tree still sees races, and that absl::Mutex orders accesses
// (tests/sanitize/absl_mutex_tsan.cc): `tsan_canary unguarded` writes a counter from two
// threads without a lock and must be reported; `tsan_canary guarded` does the same under
// an absl::Mutex, with a waiter in Mutex::Await and one in CondVar::WaitWithTimeout, and
// must run clean.
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

constexpr int kIncrements = 10000;

int Unguarded() {
  long counter = 0;
  std::thread a([&] { for (int i = 0; i < kIncrements; ++i) ++counter; });
  std::thread b([&] { for (int i = 0; i < kIncrements; ++i) ++counter; });
  a.join();
  b.join();
  std::printf("unguarded: %ld\n", counter);
  return 0;
}

int Guarded() {
  absl::Mutex mu;
  absl::CondVar changed;
  long counter = 0;  // guarded by mu
  auto add = [&] {
    for (int i = 0; i < kIncrements; ++i) {
      absl::MutexLock lock(&mu);
      ++counter;
      changed.Signal();
    }
  };
  std::thread awaiter([&] {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](long* c) { return *c >= kIncrements; }, &counter));
  });
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    while (counter < 2 * kIncrements) changed.WaitWithTimeout(&mu, absl::Milliseconds(50));
  });
  std::thread a(add), b(add);
  a.join();
  b.join();
  awaiter.join();
  waiter.join();
  std::printf("guarded: %ld\n", counter);
  return counter == 2 * kIncrements ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "unguarded") == 0) return Unguarded();
  if (argc == 2 && std::strcmp(argv[1], "guarded") == 0) return Guarded();
  std::fprintf(stderr, "usage: tsan_canary unguarded|guarded\n");
  return 2;
}
