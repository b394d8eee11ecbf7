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
      std::lock_guard<std::mutex> lock(mu_);
      pending_ += piece;
      started_ = true;
    }
    cv_.notify_all();
    return !cancelled_.load() && !(abort_ != nullptr && abort_->load());
  });
  {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = std::move(result);
    done_ = started_ = true;
  }
  cv_.notify_all();
}

void GenerationStream::WaitStarted() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return started_; });
}

bool GenerationStream::Next(std::string* text) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !pending_.empty() || done_; });
  text->clear();
  text->swap(pending_);
  return !text->empty() || !done_;
}

bool GenerationStream::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

}  // namespace qlorad::server
