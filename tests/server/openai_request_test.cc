// OpenAI request bodies -> GenerateInput: defaults as OpenAI documents them, every
// refusal naming its field first (the HTTP front end turns that into error.param).
#include "server/daemon/openai_request.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/daemon/openai_response.h"

namespace qlorad::server {
namespace {

using ::testing::StartsWith;

TEST(OpenAiRequest, CompletionDefaultsAndRawPrompt) {
  auto r = ParseOpenAiRequest(R"({"model":"base","prompt":"Hello","seed":3})", false, "base");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->input.adapter, "");  // the base by name
  EXPECT_TRUE(r->input.raw_prompt);
  EXPECT_EQ(r->input.max_new_tokens, 16);  // OpenAI's completions default
  EXPECT_EQ(r->input.temperature, 1.0);
  EXPECT_EQ(r->input.seed, 3u);
  EXPECT_EQ(r->logprobs, -1);
  EXPECT_FALSE(r->input.constraint.active());
}

TEST(OpenAiRequest, ChatMessagesStopAndStructuredOutput) {
  auto r = ParseOpenAiRequest(R"({"model":"sentiment:prod","messages":[
      {"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"!"}]}],
      "stop":"END","logprobs":true,"top_logprobs":2,"stream":true,"stream_options":{"include_usage":true},
      "response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,
        "schema":{"type":"object","properties":{"z":{"type":"integer"},"a":{"type":"string"}}}}}})",
                              true, "base");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->input.adapter, "sentiment:prod");
  ASSERT_EQ(r->input.messages.size(), 2u);
  EXPECT_EQ(r->input.messages[0].role, "system");
  EXPECT_EQ(r->input.messages[1].content, "Hi!");
  EXPECT_EQ(r->input.max_new_tokens, 0);  // chat: as many as fit
  EXPECT_EQ(r->input.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r->logprobs, 2);
  EXPECT_TRUE(r->stream && r->include_usage);
  EXPECT_EQ(r->input.constraint.kind, constrain::ConstraintSpec::Kind::kJsonSchema);
  // The schema keeps the client's property order (z before a): outputs follow it.
  EXPECT_LT(r->input.constraint.text.find("\"z\""), r->input.constraint.text.find("\"a\""));
  EXPECT_EQ(r->input.constraint.field, "response_format.json_schema.schema");
}

TEST(OpenAiRequest, RefusalsNameTheField) {
  struct Case {
    bool chat;
    const char* body;
    const char* field;
  };
  for (const Case& c : {Case{false, "{oops", "body:"}, Case{false, "[1]", "body:"},
                        Case{false, R"({"prompt":"x"})", "model:"},
                        Case{false, R"({"model":"m","prompt":"x","max_tokens":"5"})", "max_tokens:"},
                        Case{false, R"({"model":"m","prompt":"x","max_tokens":0})", "max_tokens:"},
                        Case{false, R"({"model":"m","prompt":"x","temperature":3})", "temperature:"},
                        Case{false, R"({"model":"m","prompt":"x","top_p":0})", "top_p:"},
                        Case{false, R"({"model":"m","prompt":"x","n":2})", "n:"},
                        Case{false, R"({"model":"m","prompt":"x","presence_penalty":0.5})", "presence_penalty:"},
                        Case{false, R"({"model":"m","prompt":"x","logprobs":9})", "logprobs:"},
                        Case{false, R"({"model":"m","prompt":"x","wat":1})", "wat:"},
                        Case{false, R"({"model":"m","prompt":[1,2,3]})", "prompt:"},
                        Case{false, R"({"model":"m","prompt":"x","stop":[1]})", "stop:"},
                        Case{false, R"({"model":"m","prompt":"x","stream_options":{}})", "stream_options:"},
                        Case{false, R"({"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":1}})",
                             "stream_options.include_usage:"},
                        Case{false, R"({"model":"m","prompt":"x","guided_choice":["a"],"guided_regex":"a"})",
                             "guided_regex: conflicts with guided_choice"},
                        Case{true, R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", "messages[0].role:"},
                        Case{true, R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content:"},
                        Case{true, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
                             "messages[0].content[0]:"},
                        Case{true, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})",
                             "top_logprobs:"},
                        Case{true, R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})",
                             "response_format.json_schema:"},
                        Case{true, R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})",
                             "tools:"},
                        Case{true, R"({"model":"m","messages":[{"role":"user","content":"x"}],"prompt":"p"})", "prompt:"}}) {
    auto r = ParseOpenAiRequest(c.body, c.chat, "base");
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(std::string(r.status().message()), StartsWith(c.field)) << c.body;
  }
}

TEST(OpenAiResponse, ShapesFollowTheApi) {
  auto r = ParseOpenAiRequest(R"({"model":"a@1","prompt":"x","logprobs":1})", false, "base");
  ASSERT_TRUE(r.ok());
  service::GenerateOutput out;
  out.text = "ab";
  out.tokens = {5, 6};
  out.prompt_tokens = 3;
  out.finish_reason = "length";
  out.logprobs = {{"a", -0.5, {{"a", -0.5}}}, {"b", -1.5, {{"c", -0.25}}}};
  const ResponseIdentity who = NewResponseIdentity(*r);
  EXPECT_THAT(who.id, StartsWith("cmpl-"));
  const nlohmann::json body = CompletionBody(*r, who, out);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], "ab");
  EXPECT_EQ(body["usage"]["total_tokens"], 5);
  EXPECT_EQ(body["choices"][0]["logprobs"]["tokens"], nlohmann::json({"a", "b"}));
  EXPECT_EQ(body["choices"][0]["logprobs"]["text_offset"], nlohmann::json({0, 1}));
  EXPECT_EQ(body["choices"][0]["logprobs"]["top_logprobs"][1]["c"], -0.25);
  EXPECT_EQ(SseEvent("[DONE]"), "data: [DONE]\n\n");
}

}  // namespace
}  // namespace qlorad::server
