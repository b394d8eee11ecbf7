#include "core/data/example_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "core/util/sha256.h"
#include "tests/core/data/data_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::data {
namespace {

using ::qlorad::data::testing::WriteFile;
using ::qlorad::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

class ReaderTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& contents) {
    std::string path = dir_ + "/" + name;
    WriteFile(path, contents);
    return path;
  }
  // Reads everything; returns the final status and the examples.
  absl::Status ReadAll(const std::string& path, std::vector<Example>* out, ReaderOptions options = {}) {
    auto reader = ExampleReader::Open(path, options);
    if (!reader.ok()) return reader.status();
    for (;;) {
      Example e;
      auto got = (*reader)->Next(&e);
      if (!got.ok()) return got.status();
      if (!*got) return absl::OkStatus();
      out->push_back(e);
    }
  }
  ~ReaderTest() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_ = qlorad::testing::MakeTempDir("qlorad_reader_");
};

TEST_F(ReaderTest, ParsesAllJsonlFormats) {
  std::vector<Example> v;
  ASSERT_OK(ReadAll(Write("a.jsonl", R"({"instruction":"Say hi","input":"","output":"hi"}
{"instruction":"Add","output":"3","input":"1+2","extra":1}

)"),
                    &v));
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].format, DatasetFormat::kAlpaca);
  EXPECT_EQ(v[1].input, "1+2");
  EXPECT_EQ(v[1].line, 2);

  v.clear();
  ASSERT_OK(ReadAll(
      Write(
          "c.jsonl",
          R"({"messages":[{"role":"system","content":"be nice"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"),
      &v));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].format, DatasetFormat::kChat);
  ASSERT_EQ(v[0].messages.size(), 3u);
  EXPECT_EQ(TargetText(v[0]), "a");

  v.clear();
  ASSERT_OK(ReadAll(Write("p.jsonl", "{\"prompt\":\"2+2=\",\"completion\":\"4\"}\r\n"), &v));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].format, DatasetFormat::kPromptCompletion);
  EXPECT_EQ(v[0].completion, "4");

  v.clear();
  ASSERT_OK(ReadAll(Write("k.jsonl", R"({"text":"good","label":1}
{"text":"bad","label_a":"neg","label_b":"neg"}
{"text":"meh","label_a":"neg","label_b":"pos","resolution":"pos"}
{"text":"hm","label_a":"neg","label_b":"pos"}
)"),
                    &v));
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].label, "1");
  EXPECT_EQ(v[1].label, "neg");
  EXPECT_EQ(v[2].label, "pos");
  EXPECT_EQ(v[3].label, "");  // unresolved, left to the consistency stage
}

TEST_F(ReaderTest, RoundTripsCanonicalLines) {
  Example e;
  e.format = DatasetFormat::kChat;
  e.messages = {{"user", "ünïcode \"quoted\"\n\t\\ back\x01slash \x7f"}, {"assistant", "ok"}};
  e.source_line = 7;
  std::vector<Example> v;
  ASSERT_OK(ReadAll(Write("r.jsonl", ExampleToJsonLine(e) + "\n"), &v));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].messages[0].content, e.messages[0].content);
  EXPECT_EQ(v[0].source_line, 7);
  // The hand-written serialiser produces exactly what nlohmann::json would.
  nlohmann::json j = nlohmann::json::parse(ExampleToJsonLine(e));
  EXPECT_EQ(j["messages"][0]["content"], e.messages[0].content);
  EXPECT_THAT(ExampleToJsonLine(e), HasSubstr(nlohmann::json(e.messages[0].content).dump()));
}

TEST(NormalizeTest, StreamingHashEqualsHashOfNormalisedText) {
  EXPECT_EQ(NormalizeWhitespaceCase("  Hello \t WORLD!\n"), "hello world!");
  EXPECT_EQ(NormalizeNearDuplicate("  Hello, WORLD!!\n"), "hello world");
  EXPECT_EQ(NormalizedHash64("  Great, movie!! ", true), NormalizedHash64("great movie", true));
  EXPECT_NE(NormalizedHash64("great movie", true), NormalizedHash64("great movies", true));
  EXPECT_NE(NormalizedHash64("Great, movie", false), NormalizedHash64("great movie", false));
  EXPECT_EQ(NormalizedHash64("A  b", false), NormalizedHash64("a b", false));
}

struct BadCase {
  const char* name;
  std::string contents;
  DatasetFormat format;
  const char* kind;
  const char* where;  // "file:line: field 'x'" suffix expected in the message
};

TEST_F(ReaderTest, EveryMalformedInputClassHasItsDocumentedError) {
  const std::string good = R"({"instruction":"a","input":"","output":"b"})";
  std::vector<BadCase> cases = {
      {"bad_json", good + "\n{\"instruction\": \"a\",, }\n", DatasetFormat::kAuto, "[bad_json]", ":2: field '<line>'"},
      {"number_overflow", good + "\n{\"text\":\"a\",\"label\":1e999}\n", DatasetFormat::kAuto, "[bad_json]",
       ":2: field '<line>'"},
      {"missing", good + "\n" + good + "\n{\"instruction\":\"a\"}\n", DatasetFormat::kAuto, "[missing_field]",
       ":3: field 'output'"},
      {"wrong_type", good + "\n{\"instruction\":\"a\",\"output\":5}\n", DatasetFormat::kAuto, "[wrong_type]",
       ":2: field 'output'"},
      {"not_object", good + "\n[1,2]\n", DatasetFormat::kAlpaca, "[wrong_type]", ":2: field '<line>'"},
      {"unknown_role",
       R"({"messages":[{"role":"user","content":"q"},{"role":"bot","content":"a"}]})"
       "\n",
       DatasetFormat::kAuto, "[unknown_role]", ":1: field 'messages[1].role'"},
      {"no_assistant",
       R"({"messages":[{"role":"user","content":"q"}]})"
       "\n",
       DatasetFormat::kChat, "[missing_field]", ":1: field 'messages'"},
      {"empty", "", DatasetFormat::kAuto, "[empty_file]", ":1: field '<file>'"},
      {"blank_only", "\n  \n\n", DatasetFormat::kAuto, "[empty_file]", ":1: field '<file>'"},
      {"huge", good + "\n{\"instruction\":\"" + std::string(5000, 'x') + "\",\"output\":\"y\"}\n" + good + "\n",
       DatasetFormat::kAuto, "[line_too_long]", ":2: field '<line>'"},
      {"utf8", good + "\n{\"instruction\":\"caf\xC3\x28\",\"output\":\"y\"}\n", DatasetFormat::kAuto, "[invalid_utf8]",
       ":2: field '<line>'"},
      {"overlong_utf8", "{\"instruction\":\"\xC0\xAF\",\"output\":\"y\"}\n", DatasetFormat::kAuto, "[invalid_utf8]",
       ":1: field '<line>'"},
      {"unknown_format", "{\"question\":\"a\"}\n", DatasetFormat::kAuto, "[unknown_format]", ":1: field '<line>'"},
      {"label_wrong_type", "{\"text\":\"a\",\"label\":[1]}\n", DatasetFormat::kAuto, "[wrong_type]",
       ":1: field 'label'"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = Write(std::string(c.name) + ".jsonl", c.contents);
    std::vector<Example> v;
    ReaderOptions options;
    options.format = c.format;
    options.max_line_bytes = 1024;
    EXPECT_THAT(ReadAll(path, &v, options), StatusIs(absl::StatusCode::kInvalidArgument,
                                                     AllOf(HasSubstr(c.kind), HasSubstr(path + std::string(c.where)))));
  }
}

TEST_F(ReaderTest, CollectsUpToMaxErrorsTogether) {
  std::string contents;
  for (int i = 1; i <= 10; ++i) contents += i % 2 ? "{\"prompt\":\"p\",\"completion\":\"c\"}\n" : "{oops\n";
  std::string path = Write("many.jsonl", contents);
  std::vector<Example> v;
  absl::Status all = ReadAll(path, &v);
  EXPECT_THAT(all, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("5 bad lines"), HasSubstr(":2:"), HasSubstr(":4:"), HasSubstr(":6:"),
                                  HasSubstr(":8:"), HasSubstr(":10:"))));
  ReaderOptions options;
  options.max_errors = 3;
  v.clear();
  EXPECT_THAT(ReadAll(path, &v, options),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("3 bad lines"), HasSubstr("max_errors=3"),
                                                                 HasSubstr(":6:"), ::testing::Not(HasSubstr(":8:")))));
}

TEST_F(ReaderTest, HugeLineIsSkippedWithoutBufferingIt) {
  // 12 MiB line > the 8 MiB default; the reader must not hold it and must continue after it.
  std::string huge = "{\"text\":\"" + std::string(12 << 20, 'a') + "\",\"label\":\"x\"}\n";
  std::string path =
      Write("huge.jsonl", "{\"text\":\"t\",\"label\":\"x\"}\n" + huge + "{\"text\":\"u\",\"label\":1}\n");
  auto reader = ExampleReader::Open(path, {});
  ASSERT_OK(reader);
  Example e;
  ASSERT_OK_AND_ASSIGN(bool got, (*reader)->Next(&e));
  EXPECT_TRUE(got);
  ASSERT_OK_AND_ASSIGN(got, (*reader)->Next(&e));  // line 3 is fine; line 2 was collected
  EXPECT_TRUE(got);
  EXPECT_EQ(e.line, 3);
  EXPECT_THAT((*reader)->Next(&e).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(":2:"), HasSubstr("[line_too_long]"))));
}

TEST_F(ReaderTest, CsvFollowsRfc4180) {
  std::string path = Write("d.csv",
                           "\xEF\xBB\xBFtext,label\r\n"
                           "\"Hello, world\",pos\r\n"
                           "\"She said \"\"hi\"\"\",neg\r\n"
                           "\"two\nlines\",pos\r\n"
                           "plain,neg\n"
                           "\n");
  std::vector<Example> v;
  ASSERT_OK(ReadAll(path, &v));
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].text, "Hello, world");
  EXPECT_EQ(v[1].text, "She said \"hi\"");
  EXPECT_EQ(v[2].text, "two\nlines");
  EXPECT_EQ(v[2].line, 4);
  EXPECT_EQ(v[3].text, "plain");
  EXPECT_EQ(v[3].line, 6);  // the quoted newline counts as a line
  EXPECT_EQ(v[3].label, "neg");

  v.clear();
  ASSERT_OK(ReadAll(Write("two.csv", "text,label_a,label_b,resolution\nx,a,b,b\ny,a,a,\n"), &v));
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].label, "b");
  EXPECT_EQ(*v[1].label_b, "a");
  EXPECT_EQ(v[1].label, "a");
}

TEST_F(ReaderTest, CsvErrorsNameFileLineAndField) {
  std::vector<Example> v;
  std::string p1 = Write("h.csv", "body,label\nx,y\n");
  EXPECT_THAT(ReadAll(p1, &v), StatusIs(absl::StatusCode::kInvalidArgument,
                                        AllOf(HasSubstr(p1 + ":1: field '<header>'"), HasSubstr("[csv_header]"))));
  std::string p2 = Write("n.csv", "text,label\na,b\na,b,c\n\"x\"y,z\n\"open,a\n");
  EXPECT_THAT(ReadAll(p2, &v), StatusIs(absl::StatusCode::kInvalidArgument,
                                        AllOf(HasSubstr(p2 + ":3: field '<line>'"), HasSubstr("[csv_field_count]"),
                                              HasSubstr(p2 + ":4: field 'column 1'"), HasSubstr("[csv_syntax]"),
                                              HasSubstr(p2 + ":5: field 'column 1': unterminated"))));
  std::string p3 = Write("u.csv", "text,label\n\"caf\xE9\",x\n");
  EXPECT_THAT(ReadAll(p3, &v), StatusIs(absl::StatusCode::kInvalidArgument,
                                        AllOf(HasSubstr(p3 + ":2: field 'text'"), HasSubstr("[invalid_utf8]"))));
  std::string p4 = Write("m.csv", "text,label\nhello,\n");
  EXPECT_THAT(ReadAll(p4, &v), StatusIs(absl::StatusCode::kInvalidArgument,
                                        AllOf(HasSubstr(p4 + ":2: field 'label'"), HasSubstr("[missing_field]"))));
}

TEST_F(ReaderTest, SourceChecksumMatchesFileDigest) {
  std::string path = Write("s.jsonl", "{\"prompt\":\"a\",\"completion\":\"b\"}\n");
  ASSERT_OK_AND_ASSIGN(auto reader, ExampleReader::Open(path, {}));
  Example e;
  while (*reader->Next(&e)) {
  }
  // Independent digest: sha256 of "{...}\n" computed by the util library's one-shot helper.
  EXPECT_EQ(reader->source_sha256().size(), 64u);
  ASSERT_OK_AND_ASSIGN(std::string direct, Sha256File(path));
  EXPECT_EQ(reader->source_sha256(), direct);
}

TEST(Utf8Test, ValidatorAgreesWithKnownCases) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii text that is long enough"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("za\xC5\xBC\xC3\xB3\xC5\x82\xC4\x87 \xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("abc\xED\xA0\x80"), 3u);       // surrogate
  EXPECT_EQ(FindInvalidUtf8("abcdefgh\xE0\x80\xAF"), 8u);  // overlong
  EXPECT_EQ(FindInvalidUtf8("\xF4\x90\x80\x80"), 0u);      // > U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("ab\xC3"), 2u);                // truncated
}

}  // namespace
}  // namespace qlorad::data
