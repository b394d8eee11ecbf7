#include "server/daemon/openai_request.h"

#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace qlorad::server {
namespace {

using Json = nlohmann::ordered_json;  // keeps a JSON schema's property order

constexpr int64_t kCompletionsDefaultMaxTokens = 16;  // OpenAI's default for /v1/completions
constexpr int64_t kMaxTopLogprobs = 20;
constexpr int kMaxJsonDepth = 200;

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

const std::set<std::string>& KnownFields(bool chat) {
  static const std::set<std::string> kCommon = {
      "model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "seed", "logprobs",
      "presence_penalty", "frequency_penalty", "logit_bias", "user", "response_format", "guided_json",
      "guided_choice", "guided_regex", "top_k"};
  static const std::set<std::string> kCompletions = [] {
    auto s = kCommon;
    s.insert({"prompt", "echo", "suffix", "best_of"});
    return s;
  }();
  static const std::set<std::string> kChat = [] {
    auto s = kCommon;
    s.insert({"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls"});
    return s;
  }();
  return chat ? kChat : kCompletions;
}

absl::StatusOr<double> Number(const Json& body, const char* field, double fallback, double lo, double hi) {
  if (!body.contains(field) || body[field].is_null()) return fallback;
  if (!body[field].is_number()) return Bad(field, "must be a number");
  const double v = body[field].get<double>();
  if (v < lo || v > hi) return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
  return v;
}

absl::StatusOr<int64_t> Integer(const Json& body, const char* field, int64_t fallback) {
  if (!body.contains(field) || body[field].is_null()) return fallback;
  if (!body[field].is_number_integer()) return Bad(field, "must be an integer");
  return body[field].get<int64_t>();
}

absl::StatusOr<bool> Boolean(const Json& body, const char* field, bool fallback) {
  if (!body.contains(field) || body[field].is_null()) return fallback;
  if (!body[field].is_boolean()) return Bad(field, "must be a boolean");
  return body[field].get<bool>();
}

absl::Status RefuseUnsupported(const Json& body) {
  for (const char* penalty : {"presence_penalty", "frequency_penalty"}) {
    QLORAD_ASSIGN_OR_RETURN(double v, Number(body, penalty, 0, -2, 2));
    if (v != 0) return Bad(penalty, "is not supported (only 0)");
  }
  if (body.contains("logit_bias") && !body["logit_bias"].is_null() && !body["logit_bias"].empty())
    return Bad("logit_bias", "is not supported");
  QLORAD_ASSIGN_OR_RETURN(int64_t n, Integer(body, "n", 1));
  if (n != 1) return Bad("n", "only n = 1 is supported");
  QLORAD_ASSIGN_OR_RETURN(bool echo, Boolean(body, "echo", false));
  if (echo) return Bad("echo", "is not supported");
  if (body.contains("suffix") && !body["suffix"].is_null()) return Bad("suffix", "is not supported");
  QLORAD_ASSIGN_OR_RETURN(int64_t best_of, Integer(body, "best_of", 1));
  if (best_of != 1) return Bad("best_of", "only 1 is supported");
  if (body.contains("tools") && !body["tools"].is_null() && !body["tools"].empty()) return Bad("tools", "tool calls are not supported");
  if (body.contains("tool_choice") && !(body["tool_choice"].is_null() || body["tool_choice"] == "none"))
    return Bad("tool_choice", "tool calls are not supported");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StopStrings(const Json& body) {
  if (!body.contains("stop") || body["stop"].is_null()) return std::vector<std::string>();
  const Json& stop = body["stop"];
  if (stop.is_string()) return std::vector<std::string>{stop.get<std::string>()};
  if (!stop.is_array()) return Bad("stop", "must be a string or an array of strings");
  std::vector<std::string> out;
  for (const auto& s : stop) {
    if (!s.is_string()) return Bad("stop", "must be a string or an array of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::string> MessageText(const Json& content, const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return Bad(field, "must be a string or an array of text parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string where = absl::StrCat(field, "[", i, "]");
    const bool text_part = part.is_object() && part.contains("type") && part["type"] == "text" && part.contains("text") &&
                           part["text"].is_string();
    if (!text_part)
      return Bad(where, "only {\"type\": \"text\", \"text\": ...} parts are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

absl::StatusOr<std::vector<service::ChatTurn>> Messages(const Json& body) {
  if (!body.contains("messages")) return Bad("messages", "is required");
  const Json& list = body["messages"];
  if (!list.is_array() || list.empty()) return Bad("messages", "must be a non-empty array");
  std::vector<service::ChatTurn> turns;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string field = absl::StrCat("messages[", i, "]");
    const Json& m = list[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) return Bad(field + ".role", "must be a string");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for system instructions
    if (role != "system" && role != "user" && role != "assistant")
      return Bad(field + ".role", absl::StrCat("'", role, "' is not system, developer, user or assistant"));
    if (!m.contains("content")) return Bad(field + ".content", "is required");
    QLORAD_ASSIGN_OR_RETURN(std::string text, MessageText(m["content"], field + ".content"));
    turns.push_back({role, std::move(text)});
  }
  return turns;
}

absl::StatusOr<constrain::ConstraintSpec> Constraint(const Json& body) {
  constrain::GuidedFields guided;
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const Json& rf = body["response_format"];
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
      return Bad("response_format.type", "must be text, json_object or json_schema");
    const std::string type = rf["type"].get<std::string>();
    if (type == "json_object") {
      guided.json_object = true;
      guided.json_object_field = "response_format";
    } else if (type == "json_schema") {
      if (!rf.contains("json_schema") || !rf["json_schema"].is_object())
        return Bad("response_format.json_schema", "must be an object with a schema");
      const Json& js = rf["json_schema"];
      for (const auto& [key, value] : js.items())
        if (key != "name" && key != "schema" && key != "strict" && key != "description")
          return Bad("response_format.json_schema." + key, "Unrecognized argument");
      if (!js.contains("schema") || !(js["schema"].is_object() || js["schema"].is_boolean()))
        return Bad("response_format.json_schema.schema", "must be a JSON schema object");
      guided.json_schema = js["schema"].dump();
      guided.json_schema_field = "response_format.json_schema.schema";
    } else if (type != "text") {
      return Bad("response_format.type", absl::StrCat("'", type, "' is not text, json_object or json_schema"));
    }
  }
  if (body.contains("guided_json") && !body["guided_json"].is_null()) {
    if (!guided.json_schema.empty() || guided.json_object)
      return Bad("guided_json", "set either response_format or guided_json");
    const Json& g = body["guided_json"];
    guided.json_schema = g.is_string() ? g.get<std::string>() : g.dump();
  }
  if (body.contains("guided_choice") && !body["guided_choice"].is_null()) {
    const Json& g = body["guided_choice"];
    if (!g.is_array() || g.empty()) return Bad("guided_choice", "must be a non-empty array of strings");
    for (const auto& c : g) {
      if (!c.is_string()) return Bad("guided_choice", "must be a non-empty array of strings");
      guided.choice.push_back(c.get<std::string>());
    }
  }
  if (body.contains("guided_regex") && !body["guided_regex"].is_null()) {
    if (!body["guided_regex"].is_string()) return Bad("guided_regex", "must be a string");
    guided.regex = body["guided_regex"].get<std::string>();
  }
  return constrain::ConstraintFromFields(guided);
}

absl::Status ParseLogprobs(const Json& body, bool chat, OpenAiRequest* out) {
  if (chat) {
    QLORAD_ASSIGN_OR_RETURN(bool wanted, Boolean(body, "logprobs", false));
    QLORAD_ASSIGN_OR_RETURN(int64_t top, Integer(body, "top_logprobs", 0));
    if (top < 0 || top > kMaxTopLogprobs) return Bad("top_logprobs", absl::StrCat("must be in [0, ", kMaxTopLogprobs, "]"));
    if (top > 0 && !wanted) return Bad("top_logprobs", "needs logprobs: true");
    out->logprobs = wanted ? top : -1;
  } else {
    QLORAD_ASSIGN_OR_RETURN(int64_t top, Integer(body, "logprobs", -1));
    if (top > 5 || top < -1) return Bad("logprobs", "must be in [0, 5]");
    out->logprobs = top;
  }
  out->input.top_logprobs = out->logprobs;
  return absl::OkStatus();
}

absl::Status ParseSampling(const Json& body, bool chat, service::GenerateInput* in) {
  const char* max_field = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  // Chat without a limit: as many tokens as fit (0), as OpenAI does, capped by --max-new-tokens.
  const bool unset = !body.contains(max_field) || body[max_field].is_null();
  QLORAD_ASSIGN_OR_RETURN(in->max_new_tokens, Integer(body, max_field, chat ? 0 : kCompletionsDefaultMaxTokens));
  if (in->max_new_tokens < 1 && !(chat && unset)) return Bad(max_field, "must be at least 1");
  QLORAD_ASSIGN_OR_RETURN(in->temperature, Number(body, "temperature", 1.0, 0, 2));
  QLORAD_ASSIGN_OR_RETURN(in->top_p, Number(body, "top_p", 1.0, 0, 1));
  if (in->top_p == 0) return Bad("top_p", "must be greater than 0");
  QLORAD_ASSIGN_OR_RETURN(in->top_k, Integer(body, "top_k", 0));
  if (in->top_k < -1) return Bad("top_k", "must be -1, 0 (no limit) or positive");
  if (in->top_k == -1) in->top_k = 0;  // vLLM spells "no limit" -1
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) return Bad("seed", "must be an integer");
    in->seed = static_cast<uint64_t>(body["seed"].get<int64_t>());
  } else {
    in->seed = std::random_device{}();  // unseeded requests differ, as OpenAI's do
  }
  QLORAD_ASSIGN_OR_RETURN(in->stop, StopStrings(body));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(const std::string& text, bool chat, const std::string& base_model) {
  bool too_deep = false;  // dumping (a schema) recurses per level: bound the nesting
  const Json::parser_callback_t limit_depth = [&too_deep](int depth, Json::parse_event_t, Json&) {
    too_deep = too_deep || depth > kMaxJsonDepth;
    return !too_deep;
  };
  Json body = Json::parse(text, limit_depth, /*allow_exceptions=*/false);
  if (too_deep) return Bad("body", absl::StrCat("JSON nested deeper than ", kMaxJsonDepth, " levels"));
  if (body.is_discarded()) return Bad("body", "is not valid JSON (hint: send Content-Type: application/json)");
  if (!body.is_object()) return Bad("body", "must be a JSON object");
  for (const auto& [key, value] : body.items())
    if (!KnownFields(chat).count(key)) return Bad(key, "Unrecognized request argument supplied");
  OpenAiRequest out;
  out.chat = chat;
  if (!body.contains("model") || !body["model"].is_string() || body["model"].get<std::string>().empty())
    return Bad("model", "is required (the base model's name, an adapter name@version or an alias; see GET /v1/models)");
  out.model = body["model"].get<std::string>();
  out.input.adapter = out.model == base_model ? "" : out.model;
  QLORAD_RETURN_IF_ERROR(RefuseUnsupported(body));
  if (chat) {
    QLORAD_ASSIGN_OR_RETURN(out.input.messages, Messages(body));
  } else {
    if (!body.contains("prompt")) return Bad("prompt", "is required");
    const Json& prompt = body["prompt"];
    if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
      out.input.prompt = prompt[0].get<std::string>();
    } else if (prompt.is_string()) {
      out.input.prompt = prompt.get<std::string>();
    } else {
      return Bad("prompt", "must be a string (batches and token arrays are not supported)");
    }
    out.input.raw_prompt = true;  // a completions prompt is taken as is
  }
  QLORAD_RETURN_IF_ERROR(ParseSampling(body, chat, &out.input));
  QLORAD_RETURN_IF_ERROR(ParseLogprobs(body, chat, &out));
  QLORAD_ASSIGN_OR_RETURN(out.stream, Boolean(body, "stream", false));
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const Json& so = body["stream_options"];
    if (!so.is_object()) return Bad("stream_options", "must be an object");
    if (!out.stream) return Bad("stream_options", "is only allowed with stream: true");
    if (so.contains("include_usage") && !so["include_usage"].is_boolean())
      return Bad("stream_options.include_usage", "must be a boolean");
    out.include_usage = so.value("include_usage", false);
  }
  QLORAD_ASSIGN_OR_RETURN(out.input.constraint, Constraint(body));
  return out;
}

}  // namespace qlorad::server
