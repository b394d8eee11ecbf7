// Deliberately wrong, never built: proves deploy/thread-safety-check.sh is live.
//
// The check compiles this file with the flags of a real qlorad translation unit
// (taken from compile_commands.json) and REQUIRES clang to reject it with a
// -Wthread-safety error on each marked line. If flags ever stop enabling the
// analysis (a -w, a -Wno-everything after it, a compiler without the annotations),
// this file compiles cleanly and the check fails instead of passing vacuously.
// Not listed in any CMakeLists.txt.
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace qlorad::thread_safety_probe {

class Counter {
 public:
  void Add(int64_t n) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    value_ += n;
  }
  // EXPECT-THREAD-SAFETY-ERROR: reads value_ without holding mu_.
  int64_t UnguardedRead() const { return value_; }
  // EXPECT-THREAD-SAFETY-ERROR: calls a *Locked helper without holding mu_.
  int64_t UnlockedHelperCall() const { return ValueLocked(); }

 private:
  int64_t ValueLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return value_; }

  mutable absl::Mutex mu_;
  int64_t value_ ABSL_GUARDED_BY(mu_) = 0;
};

int64_t Probe() {
  Counter counter;
  counter.Add(1);
  return counter.UnguardedRead() + counter.UnlockedHelperCall();
}

}  // namespace qlorad::thread_safety_probe
