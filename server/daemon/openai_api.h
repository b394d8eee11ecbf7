// The OpenAI-compatible HTTP API on --openai-address, over the same ServiceCore,
// authenticator and metrics hook as the gRPC services (no second engine or auth):
//   GET  /v1/models            the base model, every adapter name@version and every
//                              alias (parent = the base), for tokens that may infer
//   POST /v1/completions       prompt taken as is (as gRPC Generate with raw_prompt)
//   POST /v1/chat/completions  messages rendered with the adapter's training prompt
//                              format (its run record), else the base's
//   GET  /health               200 while serving, 503 while draining
// `model` names the base, an adapter id or an alias. stream: true answers with
// server-sent events (data: {chunk}, ..., data: [DONE]); a client that goes away
// mid-stream cancels the generation. Errors: {"error": {message, type, param,
// code}} with 400/401/403/404/429/503, `param` naming the field.
#ifndef QLORAD_SERVER_DAEMON_OPENAI_API_H_
#define QLORAD_SERVER_DAEMON_OPENAI_API_H_

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>

#include <httplib.h>

#include "nlohmann/json.hpp"
#include "server/daemon/daemon_context.h"
#include "server/daemon/inference_service.h"
#include "server/daemon/openai_request.h"

namespace qlorad::server {

class OpenAiApi {
 public:
  // `max_body_bytes`: larger request bodies are refused (400 naming "body").
  OpenAiApi(DaemonContext d, GenerationObserver observer, size_t max_body_bytes)
      : d_(std::move(d)), observer_(std::move(observer)), max_body_bytes_(max_body_bytes), started_(std::time(nullptr)) {}
  void Register(httplib::Server& server);
  // From now on every request is refused with 503 (the daemon drains).
  void StartDraining() { draining_ = true; }
  // Waits until no completion request is in flight, or until `deadline`; then ends
  // the generations still running at their next token.
  void FinishInFlight(std::chrono::system_clock::time_point deadline);

 private:
  void ListModels(const httplib::Request& req, httplib::Response& res);
  void Complete(const httplib::Request& req, httplib::Response& res, bool chat);
  void Respond(const OpenAiRequest& request, httplib::Response& res);
  void Stream(const OpenAiRequest& request, httplib::Response& res);
  // Authorizes the request (and the drain check); on failure the error is already written.
  bool Authorize(const httplib::Request& req, httplib::Response& res, Permission needed, const char* method,
                 Principal* who);
  void SendError(httplib::Response& res, const absl::Status& status, const std::string& model = "") const;
  nlohmann::json ModelEntry(const std::string& id, int64_t created, const std::string& parent) const;
  void Observe(const char* method, const absl::Status& status, double seconds) const;

  DaemonContext d_;
  GenerationObserver observer_;
  size_t max_body_bytes_;
  int64_t started_;  // the base model's `created`: when it was loaded
  std::atomic<bool> draining_{false};
  std::atomic<bool> aborting_{false};
  std::atomic<int64_t> in_flight_{0};  // completion requests being answered (streams until their last chunk)
};

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_OPENAI_API_H_
