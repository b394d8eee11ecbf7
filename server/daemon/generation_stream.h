// One generation run on its own thread, its text pieces handed to a writer on
// another (an HTTP response being streamed). The writer learns whether the
// request was admitted before it commits to a status line: WaitStarted() returns
// at the first piece or at the end, so a refused request still gets its error.
#ifndef QLORAD_SERVER_DAEMON_GENERATION_STREAM_H_
#define QLORAD_SERVER_DAEMON_GENERATION_STREAM_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
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
  void WaitStarted();
  // Blocks for more text: false once the generation ended and everything was taken.
  bool Next(std::string* text);
  // Stops the generation at its next token (the client went away).
  void Cancel() { cancelled_ = true; }
  // The outcome, valid once Next() returned false (or WaitStarted() saw the end).
  const absl::StatusOr<service::GenerateOutput>& result() const { return result_; }
  bool done() const;

 private:
  GenerationStream() = default;
  void Run(service::ServiceCore* core, const service::GenerateInput& input);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool started_ = false, done_ = false;
  absl::StatusOr<service::GenerateOutput> result_ = absl::UnknownError("generation has not finished");
  std::atomic<bool> cancelled_{false};
  const std::atomic<bool>* abort_ = nullptr;
  std::thread thread_;
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_GENERATION_STREAM_H_
