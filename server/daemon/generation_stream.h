// One generation run on its own thread, its text pieces handed to a writer on
// another (an HTTP response being streamed). The writer learns whether the
// request was admitted before it commits to a status line: WaitStarted() returns
// at the first piece or at the end, so a refused request still gets its error.
// Locking: mu_ (a leaf) guards the hand-over; annotated for clang -Wthread-safety.
#ifndef QLORAD_SERVER_DAEMON_GENERATION_STREAM_H_
#define QLORAD_SERVER_DAEMON_GENERATION_STREAM_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/service/service_core.h"

namespace qlorad::server {

class GenerationStream {
 public:
  // `abort` (may be null, must outlive the stream): when set, the generation ends at
  // its next token as if cancelled.
  static std::shared_ptr<GenerationStream> Start(service::ServiceCore* core, service::GenerateInput input,
                                                 const std::atomic<bool>* abort = nullptr);
  ~GenerationStream();  // cancels the generation if still running, joins its thread

  // Blocks until the first piece or the end of the generation.
  void WaitStarted() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks for more text: false once the generation ended and everything was taken.
  bool Next(std::string* text) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the generation at its next token (the client went away).
  void Cancel() { cancelled_ = true; }
  // The outcome (a copy), valid once Next() returned false (or WaitStarted() saw the end).
  absl::StatusOr<service::GenerateOutput> result() const ABSL_LOCKS_EXCLUDED(mu_);
  bool done() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  GenerationStream() = default;
  void Run(service::ServiceCore* core, const service::GenerateInput& input) ABSL_LOCKS_EXCLUDED(mu_);
  bool StartedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_; }
  bool HasTextLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_.empty() || done_; }

  mutable absl::Mutex mu_;  // waiters block on the *Locked conditions (re-checked on every unlock)
  std::string pending_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusOr<service::GenerateOutput> result_ ABSL_GUARDED_BY(mu_) =
      absl::UnknownError("generation has not finished");
  std::atomic<bool> cancelled_{false};
  const std::atomic<bool>* abort_ = nullptr;
  std::thread thread_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_GENERATION_STREAM_H_
