// The GGUF writer and block quantizers against hand-derived bytes (the layouts of
// ggml-common.h and quantize_row_q{4,8}_0_ref); the Python reader in
// tests/reference/check_gguf_export.py checks whole exports independently.
#include "core/export/gguf_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/export/gguf_types.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::gguf {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

uint16_t U16(const std::string& b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | (static_cast<uint8_t>(b[at + 1]) << 8));
}
uint32_t U32(const std::string& b, size_t at) { return U16(b, at) | (static_cast<uint32_t>(U16(b, at + 2)) << 16); }
uint64_t U64(const std::string& b, size_t at) { return U32(b, at) | (static_cast<uint64_t>(U32(b, at + 4)) << 32); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(Fp16Test, KnownValuesAndRounding) {
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3c00);
  EXPECT_EQ(Fp32ToFp16(-2.0f), 0xc000);
  EXPECT_EQ(Fp32ToFp16(0.1f), 0x2e66);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16(65519.0f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7c00);  // the tie rounds to even = infinity
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -26)), 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even
  EXPECT_EQ(Fp32ToFp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
}

TEST(Fp16Test, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaNs
    ASSERT_EQ(Fp32ToFp16(Fp16ToFp32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(QuantTest, Q8_0BlockLayout) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = (j - 16) * 0.5f;  // amax 8 at j = 0
  ASSERT_OK_AND_ASSIGN(std::string b, EncodeValues(x, GgmlType::kQ8_0));
  ASSERT_EQ(b.size(), 34u);
  EXPECT_EQ(U16(b, 0), Fp32ToFp16(8.0f / 127.0f));
  EXPECT_EQ(static_cast<int8_t>(b[2]), -127);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 16]), 0);
  EXPECT_EQ(static_cast<int8_t>(b[2 + 17]), 8);     // 0.5 * 127/8 = 7.94 -> 8
  EXPECT_EQ(static_cast<int8_t>(b[2 + 31]), 119);   // 7.5 * 127/8 = 119.06
  const float d = Fp16ToFp32(U16(b, 0));
  for (int j = 0; j < 32; ++j) EXPECT_LE(std::fabs(static_cast<int8_t>(b[2 + j]) * d - x[j]), d * 0.5f + 1e-3f);
}

TEST(QuantTest, Q4_0BlockLayoutKeepsTheSignOfTheLargest) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = (j - 16) * 0.25f;  // largest |x| is -4 at j = 0
  ASSERT_OK_AND_ASSIGN(std::string b, EncodeValues(x, GgmlType::kQ4_0));
  ASSERT_EQ(b.size(), 18u);
  EXPECT_EQ(U16(b, 0), 0x3800);  // d = -4 / -8 = 0.5
  // q = min(15, (int)(x / 0.5 + 8.5)): q[0] = 0, q[1] = 1, q[16] = 8, q[17] = 9, q[31] = 16 -> 15.
  EXPECT_EQ(static_cast<uint8_t>(b[2]), 0 | (8 << 4));
  EXPECT_EQ(static_cast<uint8_t>(b[3]), 1 | (9 << 4));
  EXPECT_EQ(static_cast<uint8_t>(b[2 + 15]), 8 | (15 << 4));  // q[15] = (int)(7.5 + 0.5 ... ) = 8
  for (auto& v : x) v = -v;  // now the largest is +4: d = -0.5
  ASSERT_OK_AND_ASSIGN(b, EncodeValues(x, GgmlType::kQ4_0));
  EXPECT_EQ(U16(b, 0), 0xb800);
  EXPECT_EQ(static_cast<uint8_t>(b[2]) & 0x0f, 0);
}

TEST(QuantTest, PartialBlockIsAnError) {
  std::vector<float> x(40, 1.0f);
  EXPECT_THAT(EncodeValues(x, GgmlType::kQ8_0), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("blocks")));
  EXPECT_THAT(ParseGgmlType("q5_k"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("q4_0")));
  EXPECT_EQ(LlamaFileType(GgmlType::kQ8_0), 7u);
}

TEST(GgufWriterTest, HeaderKvInfosAndAlignedData) {
  const std::string dir = qlorad::testing::MakeTempDir("gguf_writer");
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("x.count", 7);
  ASSERT_OK(w.AddTensor({"a", {2, 3}, GgmlType::kF32}));
  ASSERT_OK(w.AddTensor({"b", {1, 32}, GgmlType::kQ8_0}));
  const std::string path = dir + "/t.gguf";
  ASSERT_OK(w.Write(path, [&](size_t i) { return EncodeValues(std::vector<float>(i == 0 ? 6 : 32, 1.5f), w.tensors()[i].type); }));
  const std::string b = ReadAll(path);
  EXPECT_EQ(U32(b, 0), 0x46554747u);
  EXPECT_EQ(b.substr(0, 4), "GGUF");
  EXPECT_EQ(U32(b, 4), 3u);
  EXPECT_EQ(U64(b, 8), 2u);   // tensors
  EXPECT_EQ(U64(b, 16), 3u);  // kv: the two + general.alignment
  size_t at = 24;
  EXPECT_EQ(U64(b, at), 20u);
  EXPECT_EQ(b.substr(at + 8, 20), "general.architecture");
  at += 28;
  EXPECT_EQ(U32(b, at), 8u);  // STRING
  EXPECT_EQ(U64(b, at + 4), 5u);
  EXPECT_EQ(b.substr(at + 12, 5), "llama");
  at += 17;
  EXPECT_EQ(b.substr(at + 8, 7), "x.count");
  at += 15;
  EXPECT_EQ(U32(b, at), 4u);  // UINT32
  EXPECT_EQ(U32(b, at + 4), 7u);
  at += 8;
  EXPECT_EQ(b.substr(at + 8, 17), "general.alignment");
  at += 25;
  EXPECT_EQ(U32(b, at + 4), 32u);
  at += 8;
  // tensor "a": dims reversed (3, 2), F32, offset 0.
  EXPECT_EQ(U64(b, at), 1u);
  at += 9;
  EXPECT_EQ(U32(b, at), 2u);
  EXPECT_EQ(U64(b, at + 4), 3u);
  EXPECT_EQ(U64(b, at + 12), 2u);
  EXPECT_EQ(U32(b, at + 20), 0u);
  EXPECT_EQ(U64(b, at + 24), 0u);
  at += 32;
  // tensor "b": (32, 1), Q8_0, offset 24 aligned up to 32.
  at += 9;
  EXPECT_EQ(U64(b, at + 4), 32u);
  EXPECT_EQ(U32(b, at + 20), 8u);
  EXPECT_EQ(U64(b, at + 24), 32u);
  at += 32;
  const size_t data = (at + 31) / 32 * 32;
  float first;
  std::memcpy(&first, b.data() + data, 4);
  EXPECT_EQ(first, 1.5f);
  EXPECT_EQ(U16(b, data + 32), Fp32ToFp16(1.5f / 127.0f));
  EXPECT_EQ(b.size(), data + 32 + 64);  // every tensor padded to the alignment
}

TEST(GgufWriterTest, RefusesBadTensorsAndLeavesNoFileOnError) {
  const std::string dir = qlorad::testing::MakeTempDir("gguf_writer_err");
  GgufWriter w;
  ASSERT_OK(w.AddTensor({"a", {4}, GgmlType::kF32}));
  EXPECT_THAT(w.AddTensor({"a", {4}, GgmlType::kF32}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(w.AddTensor({"q", {2, 48}, GgmlType::kQ4_0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("row length 48")));
  const std::string path = dir + "/bad.gguf";
  EXPECT_THAT(w.Write(path, [](size_t) -> absl::StatusOr<std::string> { return std::string(3, 'x'); }),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("expected 16")));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

}  // namespace
}  // namespace qlorad::gguf
