#include "server/daemon/generation_stream.h"

namespace qlorad::server {

std::shared_ptr<GenerationStream> GenerationStream::Start(service::ServiceCore* core, service::GenerateInput input,
                                                          const std::atomic<bool>* abort) {
  std::shared_ptr<GenerationStream> stream(new GenerationStream());
  stream->abort_ = abort;
  stream->thread_ = std::thread([p = stream.get(), core, input = std::move(input)] { p->Run(core, input); });
  return stream;
}

GenerationStream::~GenerationStream() {
  cancelled_ = true;
  if (thread_.joinable()) thread_.join();
}

void GenerationStream::Run(service::ServiceCore* core, const service::GenerateInput& input) {
  auto result = core->Generate(input, [this](const std::string& piece, int64_t) {
    {
      absl::MutexLock lock(&mu_);  // waiters wake on the unlock
      pending_ += piece;
      started_ = true;
    }
    return !cancelled_.load() && !(abort_ != nullptr && abort_->load());
  });
  absl::MutexLock lock(&mu_);
  result_ = std::move(result);
  done_ = started_ = true;
}

void GenerationStream::WaitStarted() {
  absl::MutexLock lock(&mu_, absl::Condition(this, &GenerationStream::StartedLocked));
}

bool GenerationStream::Next(std::string* text) {
  absl::MutexLock lock(&mu_, absl::Condition(this, &GenerationStream::HasTextLocked));
  text->clear();
  text->swap(pending_);
  return !text->empty() || !done_;
}

bool GenerationStream::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

absl::StatusOr<service::GenerateOutput> GenerationStream::result() const {
  absl::MutexLock lock(&mu_);
  return result_;
}

}  // namespace qlorad::server
