// ThreadSanitizer builds only (deploy/sanitize.sh thread): happens-before edges for
// absl::Mutex and absl::CondVar.
//
// Why: Debian's libabsl_synchronization is not built with -fsanitize=thread, so its
// ABSL_TSAN_MUTEX_* annotations are compiled out and TSan cannot see that a Mutex orders
// the accesses it guards: every guarded field looks racy. Suppressing those reports
// would hide real races too, so instead this file interposes the Mutex/CondVar entry
// points the code base calls (defined here, they take precedence over the shared
// library's), forwards to the library's own definition (dlsym RTLD_NEXT) and tells TSan
// what the call meant: acquiring the mutex is __tsan_acquire(mu) after the real call,
// releasing it (Unlock, and Await/Wait, which release while they wait) __tsan_release(mu)
// before. Releasing also runs absl's waiter conditions (absl::Condition callbacks, our
// instrumented code) inside the library, on whichever thread releases, always with the
// mutex held: their accesses are ordered by the mutex, which TSan cannot see from here,
// so the calls that may evaluate them ignore that thread's accesses for their duration.
// The price: a condition callback that touched unguarded state racily would go unseen.
// Linked into the test binaries of a TSan tree only (tests/CMakeLists.txt).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// TSan's dynamic annotations (libtsan exports them; no public header declares them).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);

namespace {

// While alive, this thread's memory accesses are not checked (see the file comment).
class IgnoreAccesses {
 public:
  IgnoreAccesses() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~IgnoreAccesses() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
  IgnoreAccesses(const IgnoreAccesses&) = delete;
  IgnoreAccesses& operator=(const IgnoreAccesses&) = delete;
};

// The library's definition of the function whose mangled name is `symbol`.
template <typename Fn>
Fn Real(const char* symbol) {
  void* fn = dlsym(RTLD_NEXT, symbol);
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_mutex_tsan: %s not found in libabsl_synchronization (%s)\n", symbol, dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// The mangled names spell Debian's inline namespace (absl::debian3); with another
// abseil build Real() stops with the missing name.
void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  {
    IgnoreAccesses conditions_run_under_the_lock;
    real(this);
  }
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  {
    IgnoreAccesses conditions_run_under_the_lock;
    real(this);
  }
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(this);
  {
    IgnoreAccesses conditions_run_under_the_lock;
    real(this, cond);
  }
  __tsan_acquire(this);
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  {
    IgnoreAccesses conditions_run_under_the_lock;
    real(this, cond);
  }
  __tsan_acquire(this);
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  {
    IgnoreAccesses conditions_run_under_the_lock;
    real(this, mu);
  }
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  bool timed_out;
  {
    IgnoreAccesses conditions_run_under_the_lock;
    timed_out = real(this, mu, timeout);
  }
  __tsan_acquire(mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
