#include "server/daemon/openai_response.h"

#include <ctime>
#include <random>

#include "absl/strings/str_cat.h"

namespace qlorad::server {
namespace {

using Json = nlohmann::json;

std::string RandomHex(int chars) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < chars; ++i) out.push_back(kHex[rng() & 15]);
  return out;
}

Json Bytes(const std::string& text) {
  Json list = Json::array();
  for (unsigned char c : text) list.push_back(static_cast<int>(c));
  return list;
}

Json Usage(const service::GenerateOutput& out) {
  const int64_t completion = static_cast<int64_t>(out.tokens.size());
  return {{"prompt_tokens", out.prompt_tokens}, {"completion_tokens", completion},
          {"total_tokens", out.prompt_tokens + completion}};
}

// Completions: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
// Chat: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
Json Logprobs(const OpenAiRequest& request, const service::GenerateOutput& out) {
  if (request.logprobs < 0) return nullptr;
  if (request.chat) {
    Json content = Json::array();
    for (const auto& lp : out.logprobs) {
      Json top = Json::array();
      for (const auto& [token, value] : lp.top) top.push_back({{"token", token}, {"logprob", value}, {"bytes", Bytes(token)}});
      content.push_back({{"token", lp.token}, {"logprob", lp.logprob}, {"bytes", Bytes(lp.token)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  Json tokens = Json::array(), values = Json::array(), tops = Json::array(), offsets = Json::array();
  size_t offset = 0;
  for (const auto& lp : out.logprobs) {
    tokens.push_back(lp.token);
    values.push_back(lp.logprob);
    Json top = Json::object();
    for (const auto& [token, value] : lp.top) top[token] = value;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += lp.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

Json Envelope(const OpenAiRequest& request, const ResponseIdentity& who, bool chunk) {
  const char* object = request.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", who.id}, {"object", object}, {"created", who.created}, {"model", who.model}};
}

}  // namespace

ResponseIdentity NewResponseIdentity(const OpenAiRequest& request) {
  return {absl::StrCat(request.chat ? "chatcmpl-" : "cmpl-", RandomHex(24)), static_cast<int64_t>(std::time(nullptr)),
          request.model};
}

Json CompletionBody(const OpenAiRequest& request, const ResponseIdentity& who, const service::GenerateOutput& out) {
  Json body = Envelope(request, who, false);
  Json choice = {{"index", 0}, {"logprobs", Logprobs(request, out)}, {"finish_reason", out.finish_reason}};
  if (request.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", out.text}};
  } else {
    choice["text"] = out.text;
  }
  body["choices"] = Json::array({choice});
  body["usage"] = Usage(out);
  return body;
}

Json ChunkBody(const OpenAiRequest& request, const ResponseIdentity& who, const std::string& text, bool first,
               const char* finish_reason) {
  Json body = Envelope(request, who, true);
  Json choice = {{"index", 0}, {"logprobs", nullptr},
                 {"finish_reason", finish_reason == nullptr ? Json(nullptr) : Json(finish_reason)}};
  if (request.chat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  body["choices"] = Json::array({choice});
  return body;
}

Json FinalChunkBody(const OpenAiRequest& request, const ResponseIdentity& who, const service::GenerateOutput& out) {
  Json body = ChunkBody(request, who, "", false, out.finish_reason.c_str());
  body["choices"][0]["logprobs"] = Logprobs(request, out);
  return body;
}

Json UsageChunkBody(const OpenAiRequest& request, const ResponseIdentity& who, const service::GenerateOutput& out) {
  Json body = Envelope(request, who, true);
  body["choices"] = Json::array();
  body["usage"] = Usage(out);
  return body;
}

Json ErrorBody(const std::string& message, const std::string& type, const std::string& param, const std::string& code) {
  return {{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? Json(nullptr) : Json(param)},
                     {"code", code.empty() ? Json(nullptr) : Json(code)}}}};
}

std::string SseEvent(const std::string& data) { return absl::StrCat("data: ", data, "\n\n"); }

}  // namespace qlorad::server
