// Reading, writing and rejecting malformed safetensors files and checkpoints.
#include "core/model/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/model/checkpoint.h"
#include "core/model/safetensors_writer.h"
#include "core/util/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::string RawFile(const std::string& header, size_t data_bytes, uint64_t claimed_header = 0) {
  uint64_t n = claimed_header ? claimed_header : header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\x01');
}

class SafetensorsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string dir_ = qlorad::testing::MakeTempDir("safetensors_test");
};

TEST_F(SafetensorsTest, RoundTripsEveryDType) {
  std::vector<TensorSpec> specs;
  for (const char* name : {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
                           "F8_E4M3", "F8_E5M2"})
    specs.push_back({std::string("t_") + name, *ParseDType(name), {3, 5}});
  std::string path = dir_ + "/all.safetensors";
  ASSERT_OK(WriteSafetensors(path, specs, {{"k", "v"}}, [&](size_t i, absl::Span<uint8_t> out) {
    for (size_t b = 0; b < out.size(); ++b) out[b] = static_cast<uint8_t>(i * 31 + b);
    return absl::OkStatus();
  }));
  ASSERT_OK_AND_ASSIGN(auto file, SafetensorsFile::Open(path));
  EXPECT_EQ(file->metadata().at("k"), "v");
  ASSERT_EQ(file->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo* info = file->Find(specs[i].name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, specs[i].dtype);
    EXPECT_EQ(info->shape, specs[i].shape);
    auto data = file->Data(*info);
    ASSERT_EQ(data.size(), 15 * DTypeSize(specs[i].dtype));
    EXPECT_EQ(data[1], static_cast<uint8_t>(i * 31 + 1));
  }
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_THAT(SafetensorsFile::Open(dir_ + "/nope.safetensors"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

TEST_F(SafetensorsTest, TruncatedFileNamesTheTensor) {
  std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  auto path = Write("trunc.safetensors", RawFile(header, 8));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("'w'"), HasSubstr("truncated"), HasSubstr(path))));
  EXPECT_THAT(SafetensorsFile::Open(Write("tiny.safetensors", "abc")), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated")));
}

TEST_F(SafetensorsTest, HeaderLengthLyingIsRejected) {
  std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  EXPECT_THAT(SafetensorsFile::Open(Write("lie.safetensors", RawFile(header, 4, 1u << 20))),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("header length")));
  EXPECT_THAT(SafetensorsFile::Open(Write("huge.safetensors", RawFile(header, 4, uint64_t{1} << 40))),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("100 MiB")));
}

TEST_F(SafetensorsTest, SizeMismatchBetweenShapeAndOffsets) {
  std::string header = R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})";
  EXPECT_THAT(SafetensorsFile::Open(Write("mismatch.safetensors", RawFile(header, 8))),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr("'w'"), HasSubstr("need 12"))));
}

TEST_F(SafetensorsTest, OverlappingAndGappedTensors) {
  std::string overlap = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
  EXPECT_THAT(SafetensorsFile::Open(Write("overlap.safetensors", RawFile(overlap, 6))),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("overlaps")));
  std::string gap = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})";
  EXPECT_THAT(SafetensorsFile::Open(Write("gap.safetensors", RawFile(gap, 6))),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("gap")));
}

TEST_F(SafetensorsTest, UnknownDTypeListsSupportedOnes) {
  std::string header = R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})";
  EXPECT_THAT(SafetensorsFile::Open(Write("dtype.safetensors", RawFile(header, 2))),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("Q4_K"), HasSubstr("BF16"))));
}

TEST_F(SafetensorsTest, MalformedHeaderJson) {
  EXPECT_THAT(SafetensorsFile::Open(Write("json.safetensors", RawFile("{not json", 0))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON")));
  std::string no_offsets = R"({"w":{"dtype":"F32","shape":[1]}})";
  EXPECT_THAT(SafetensorsFile::Open(Write("nooff.safetensors", RawFile(no_offsets, 4))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_offsets")));
}

TEST_F(SafetensorsTest, ShardedCheckpointResolvesAcrossFiles) {
  std::vector<TensorSpec> specs = {{"a", DType::kF32, {1024}}, {"b", DType::kF32, {1024}}, {"c", DType::kF32, {8}}};
  ASSERT_OK(WriteShardedSafetensors(dir_, specs, {}, 4096, [](size_t, absl::Span<uint8_t> out) {
    std::fill(out.begin(), out.end(), 7);
    return absl::OkStatus();
  }));
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/model.safetensors.index.json"));
  ASSERT_OK_AND_ASSIGN(auto checkpoint, Checkpoint::Open(dir_));
  EXPECT_EQ(checkpoint->files().size(), 3u);
  ASSERT_OK_AND_ASSIGN(auto entry, checkpoint->Get("c"));
  EXPECT_EQ(entry.info->ByteSize(), 32u);
  EXPECT_THAT(checkpoint->Get("missing"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("'missing'")));
}

TEST_F(SafetensorsTest, IndexNamingAbsentTensorOrShard) {
  std::vector<TensorSpec> specs = {{"a", DType::kU8, {4}}};
  ASSERT_OK(WriteSafetensors(dir_ + "/s1.safetensors", specs, {}, [](size_t, absl::Span<uint8_t>) { return absl::OkStatus(); }));
  ASSERT_OK(WriteFileAtomically(dir_ + "/model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","zzz":"s1.safetensors"}})"));
  EXPECT_THAT(Checkpoint::Open(dir_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'zzz'")));
  ASSERT_OK(WriteFileAtomically(dir_ + "/model.safetensors.index.json", R"({"weight_map":{"a":"s2.safetensors"}})"));
  EXPECT_THAT(Checkpoint::Open(dir_), StatusIs(absl::StatusCode::kNotFound, HasSubstr("s2.safetensors")));
}

}  // namespace
}  // namespace qlorad
