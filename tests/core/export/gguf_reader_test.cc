// The GGUF reader against files assembled byte by byte from the GGUF v3 layout
// (gguf.md: header, key/values, tensor infos with dimensions innermost first, padding,
// data), independently of GgufWriter; then against the writer's output; then on every
// truncation and on hostile lengths, which must be refused with the field named.
#include "core/export/gguf_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "core/export/gguf_writer.h"
#include "core/util/file_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::gguf {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // x86 and every GGUF producer: little-endian
  out.append(bytes, sizeof(T));
}
void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

// A v3 file: general.architecture = "llama", an int32 array, a float; one 3x2 F32 tensor
// "w" (GGUF dims {2, 3}: innermost first) holding 0..5, aligned to 32.
std::string HandAssembledFile() {
  std::string f = "GGUF";
  Put<uint32_t>(f, 3);
  Put<uint64_t>(f, 1);  // tensors
  Put<uint64_t>(f, 3);  // key/values
  PutString(f, "general.architecture");
  Put<uint32_t>(f, 8);  // string
  PutString(f, "llama");
  PutString(f, "x.ids");
  Put<uint32_t>(f, 9);  // array
  Put<uint32_t>(f, 5);  // of int32
  Put<uint64_t>(f, 3);
  for (int32_t v : {7, -1, 1 << 30}) Put<int32_t>(f, v);
  PutString(f, "x.eps");
  Put<uint32_t>(f, 6);  // float32
  Put<float>(f, 1e-5f);
  PutString(f, "w");
  Put<uint32_t>(f, 2);
  Put<uint64_t>(f, 2);
  Put<uint64_t>(f, 3);
  Put<uint32_t>(f, 0);  // F32
  Put<uint64_t>(f, 0);  // offset in the data section
  f.append((32 - f.size() % 32) % 32, '\0');
  for (int i = 0; i < 6; ++i) Put<float>(f, static_cast<float>(i));
  return f;
}

TEST(GgufReaderTest, ReadsAHandAssembledFile) {
  const std::string bytes = HandAssembledFile();
  absl::StatusOr<GgufFile> file = ParseGguf(bytes, "hand.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->version, 3u);
  EXPECT_EQ(file->alignment, 32u);
  ASSERT_EQ(file->metadata.size(), 3u);
  EXPECT_EQ(file->Find("general.architecture")->text, "llama");
  const GgufValue* ids = file->Find("x.ids");
  ASSERT_NE(ids, nullptr);
  ASSERT_EQ(ids->items.size(), 3u);
  EXPECT_EQ(static_cast<int32_t>(ids->items[1].scalar), -1);
  EXPECT_EQ(static_cast<int32_t>(ids->items[2].scalar), 1 << 30);
  EXPECT_FLOAT_EQ(file->Find("x.eps")->AsFloat32(), 1e-5f);
  EXPECT_EQ(file->Find("absent"), nullptr);
  ASSERT_EQ(file->tensors.size(), 1u);
  const GgufReadTensor& w = file->tensors[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_THAT(w.shape, ElementsAre(3, 2));  // torch order
  EXPECT_EQ(w.size, 24u);
  EXPECT_EQ(file->data_offset % 32, 0u);
  const std::string_view data = GgufTensorBytes(bytes, *file, w);
  ASSERT_EQ(data.size(), 24u);
  float last;
  std::memcpy(&last, data.data() + 20, 4);
  EXPECT_EQ(last, 5.0f);
}

TEST(GgufReaderTest, ReadsWhatTheWriterWrote) {
  GgufWriter writer;
  writer.SetString("general.name", "tiny");
  writer.SetUint64("x.big", uint64_t{1} << 40);
  writer.SetStringArray("tokenizer.ggml.tokens", {"<s>", "a", ""});
  writer.SetBool("x.flag", true);
  ASSERT_TRUE(writer.AddTensor({"q", {2, 32}, GgmlType::kQ8_0}).ok());
  std::vector<float> values(64);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * static_cast<float>(i) - 3.0f;
  absl::StatusOr<std::string> payload = EncodeValues(values, GgmlType::kQ8_0);
  ASSERT_TRUE(payload.ok());
  const std::string path = qlorad::testing::MakeTempDir("gguf_reader") + "/writer.gguf";
  ASSERT_TRUE(writer.Write(path, [&](size_t) -> absl::StatusOr<std::string> { return *payload; }).ok());
  ASSERT_OK_AND_ASSIGN(const std::string bytes, ReadFileToString(path));
  absl::StatusOr<GgufFile> file = ParseGguf(bytes, path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->Find("x.big")->scalar, uint64_t{1} << 40);
  EXPECT_EQ(file->Find("x.flag")->scalar, 1u);
  ASSERT_EQ(file->Find("tokenizer.ggml.tokens")->items.size(), 3u);
  EXPECT_EQ(file->Find("tokenizer.ggml.tokens")->items[1].text, "a");
  ASSERT_EQ(file->tensors.size(), 1u);
  EXPECT_THAT(file->tensors[0].shape, ElementsAre(2, 32));
  EXPECT_EQ(GgufTensorBytes(bytes, *file, file->tensors[0]), *payload);
}

TEST(GgufReaderTest, EveryTruncationIsAnErrorNamingTheSource) {
  const std::string bytes = HandAssembledFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<GgufFile> file = ParseGguf(std::string_view(bytes).substr(0, n), "cut.gguf");
    ASSERT_FALSE(file.ok()) << "accepted a file cut at byte " << n;
    EXPECT_THAT(file.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cut.gguf"))) << n;
  }
}

TEST(GgufReaderTest, HostileLengthsAreRefusedWithoutAllocating) {
  std::string huge_string = HandAssembledFile();
  // The first key's length field sits right after magic, version and the two counts.
  const uint64_t lie = uint64_t{1} << 62;
  std::memcpy(huge_string.data() + 24, &lie, sizeof(lie));
  EXPECT_THAT(ParseGguf(huge_string, "s.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds the limit")));

  std::string huge_array = HandAssembledFile();
  const size_t count_at = huge_array.find("x.ids") + 5 + 4 + 4;  // key, value type, element type
  std::memcpy(huge_array.data() + count_at, &lie, sizeof(lie));
  EXPECT_THAT(ParseGguf(huge_array, "a.gguf").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata 'x.ids'")));

  std::string bad_magic = HandAssembledFile();
  bad_magic[0] = 'X';
  EXPECT_FALSE(ParseGguf(bad_magic, "m.gguf").ok());
}

}  // namespace
}  // namespace qlorad::gguf
