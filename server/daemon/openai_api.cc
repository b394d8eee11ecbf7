#include "server/daemon/openai_api.h"

#include <chrono>
#include <ctime>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/util/scoped_counter.h"
#include "server/daemon/generation_stream.h"
#include "server/daemon/http_server.h"
#include "server/daemon/openai_response.h"

namespace qlorad::server {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kJson[] = "application/json";

// The field a core message names first ("max_tokens: ..."), as OpenAI's `param`.
std::string ParamOf(const std::string& message) {
  const size_t colon = message.find(": ");
  if (colon == std::string::npos || colon == 0) return "";
  const std::string head = message.substr(0, colon);
  for (char c : head)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '[' || c == ']' || c == '$')) return "";
  return head;
}

// UTC "YYYY-MM-DDTHH:MM:SS..." -> Unix seconds (0 when unparsable).
int64_t UnixSeconds(const std::string& utc) {
  std::tm tm{};
  if (std::sscanf(utc.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec) != 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

void OpenAiApi::FinishInFlight(std::chrono::system_clock::time_point deadline) {
  while (in_flight_.load() > 0 && std::chrono::system_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  aborting_ = true;
}

void OpenAiApi::Register(httplib::Server& server) {
  server.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) { ListModels(req, res); });
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { Complete(req, res, false); });
  server.Post("/v1/chat/completions",
              [this](const httplib::Request& req, httplib::Response& res) { Complete(req, res, true); });
  server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.status = draining_ ? 503 : 200;
    res.set_content(draining_ ? "draining\n" : "ok\n", "text/plain");
  });
  // What httplib answers itself (unknown routes, oversized or malformed requests) and
  // any exception a handler lets out get OpenAI's error shape too.
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = absl::StrCat("HTTP ", res.status, " for ", req.method, " ", req.path);
    if (res.status == 404)
      message = absl::StrCat("no route ", req.method, " ", req.path,
                             " (hint: GET /v1/models, POST /v1/completions, POST /v1/chat/completions)");
    if (res.status == 413) message = "body: the request is too large (hint: --max-message-bytes)";
    res.set_content(ErrorBody(message, res.status >= 500 ? "server_error" : "invalid_request_error",
                              res.status == 413 ? "body" : "")
                        .dump(),
                    kJson);
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    res.status = 500;
    res.set_content(ErrorBody(absl::StrCat("internal error: ", DescribeException(error)), "server_error").dump(), kJson);
  });
}

void OpenAiApi::SendError(httplib::Response& res, const absl::Status& status, const std::string& model) const {
  const HttpError http = ToHttpError(status.code());
  // Core names its generation limit max_new_tokens; OpenAI clients know it as max_tokens.
  std::string message = absl::StrReplaceAll(status.message(), {{"max_new_tokens", "max_tokens"}});
  std::string param = ParamOf(message);
  std::string code;
  if (status.code() == absl::StatusCode::kNotFound && !model.empty()) {
    message = absl::StrCat("The model '", model, "' does not exist (", message, "; hint: GET /v1/models lists them)");
    param = "model";
    code = "model_not_found";
  }
  if (status.code() == absl::StatusCode::kUnauthenticated) code = "invalid_api_key";
  res.status = http.status;
  res.set_content(ErrorBody(message, http.type, param, code).dump(), kJson);
}

bool OpenAiApi::Authorize(const httplib::Request& req, httplib::Response& res, Permission needed, const char* method,
                          Principal* who) {
  if (draining_) {
    SendError(res, absl::UnavailableError("the daemon is draining (hint: retry on another replica)"));
    return false;
  }
  const bool has_header = req.has_header("Authorization");
  const std::string header = req.get_header_value("Authorization");
  auto principal = d_.auth->AuthorizeHeader(has_header ? &header : nullptr, needed, method);
  if (!principal.ok()) {
    SendError(res, principal.status());
    Observe(method, principal.status(), 0);
    return false;
  }
  *who = *principal;
  return true;
}

void OpenAiApi::Observe(const char* method, const absl::Status& status, double seconds) const {
  if (d_.on_rpc_done) d_.on_rpc_done("OpenAI", method, ToGrpcStatus(status), seconds);
}

Json OpenAiApi::ModelEntry(const std::string& id, int64_t created, const std::string& parent) const {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "qlorad"},
          {"parent", parent.empty() ? Json(nullptr) : Json(parent)}, {"root", parent.empty() ? id : parent}};
}

void OpenAiApi::ListModels(const httplib::Request& req, httplib::Response& res) {
  Principal who;
  if (!Authorize(req, res, Permission::kRead, "ListModels", &who)) return;
  const std::string& base = d_.core->options().base_model_name;
  Json data = Json::array();
  if (Authenticator::Allows(who.role, Permission::kInference)) {  // only models this token may use
    data.push_back(ModelEntry(base, started_, ""));
    service::Page page;
    page.page_size = 1000;
    do {
      std::string next;
      auto adapters = d_.core->ListAdapters(page, &next);
      if (!adapters.ok()) return SendError(res, adapters.status());
      for (const auto& a : *adapters) {
        if (a.state == "retired" || a.state == "rejected") continue;
        const int64_t created = UnixSeconds(a.created_at);
        data.push_back(ModelEntry(a.id, created, base));
        for (const auto& alias : a.aliases) data.push_back(ModelEntry(alias, created, base));
      }
      page.page_token = next;
    } while (!page.page_token.empty());
  }
  res.set_content(Json{{"object", "list"}, {"data", data}}.dump(), kJson);
  Observe("ListModels", absl::OkStatus(), 0);
}

void OpenAiApi::Complete(const httplib::Request& req, httplib::Response& res, bool chat) {
  const char* method = chat ? "ChatCompletions" : "Completions";
  Principal who;
  if (!Authorize(req, res, Permission::kInference, method, &who)) return;
  if (req.body.size() > max_body_bytes_) {
    const absl::Status too_big = absl::InvalidArgumentError(
        absl::StrCat("body: ", req.body.size(), " bytes exceed the limit of ", max_body_bytes_, " (hint: --max-message-bytes)"));
    Observe(method, too_big, 0);
    return SendError(res, too_big);
  }
  auto request = ParseOpenAiRequest(req.body, chat, d_.core->options().base_model_name);
  if (!request.ok()) {
    Observe(method, request.status(), 0);
    return SendError(res, request.status());
  }
  if (request->stream) return Stream(*request, res);
  Respond(*request, res);
}

void OpenAiApi::Respond(const OpenAiRequest& request, httplib::Response& res) {
  ScopedCounter counted(in_flight_);
  const char* method = request.chat ? "ChatCompletions" : "Completions";
  const auto start = Clock::now();
  auto out = d_.core->Generate(request.input, [this](const std::string&, int64_t) { return !aborting_.load(); });
  Observe(method, out.status(), std::chrono::duration<double>(Clock::now() - start).count());
  if (!out.ok()) return SendError(res, out.status(), request.input.adapter.empty() ? "" : request.model);
  if (observer_) observer_(*out, request.input.adapter);
  res.set_content(CompletionBody(request, NewResponseIdentity(request), *out).dump(), kJson);
}

void OpenAiApi::Stream(const OpenAiRequest& request, httplib::Response& res) {
  const char* method = request.chat ? "ChatCompletions" : "Completions";
  const auto start = Clock::now();
  auto counted = std::make_shared<ScopedCounter>(in_flight_);  // held by the response until its last chunk
  std::shared_ptr<GenerationStream> stream = GenerationStream::Start(d_.core, request.input, &aborting_);
  stream->WaitStarted();
  if (stream->done() && !stream->result().ok()) {  // refused before any text: a plain error reply
    Observe(method, stream->result().status(), std::chrono::duration<double>(Clock::now() - start).count());
    return SendError(res, stream->result().status(), request.input.adapter.empty() ? "" : request.model);
  }
  const ResponseIdentity who = NewResponseIdentity(request);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, stream, request, who, start, method, counted](size_t, httplib::DataSink& sink) {
        auto send = [&](const Json& body) {
          const std::string event = SseEvent(body.dump());
          return sink.write(event.data(), event.size());
        };
        bool first = true;
        std::string text;
        while (stream->Next(&text)) {
          if (!send(ChunkBody(request, who, text, first, nullptr))) {
            stream->Cancel();  // the client went away: free the batch slot
            return false;
          }
          first = false;
        }
        const auto& result = stream->result();
        Observe(method, result.status(), std::chrono::duration<double>(Clock::now() - start).count());
        if (!result.ok()) {
          send(ErrorBody(std::string(result.status().message()), ToHttpError(result.status().code()).type));
        } else {
          if (observer_) observer_(*result, request.input.adapter);
          if (first) send(ChunkBody(request, who, "", true, nullptr));
          send(FinalChunkBody(request, who, *result));
          if (request.include_usage) send(UsageChunkBody(request, who, *result));
        }
        const std::string done = SseEvent("[DONE]");
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      },
      [stream](bool) { stream->Cancel(); });
}

}  // namespace qlorad::server
