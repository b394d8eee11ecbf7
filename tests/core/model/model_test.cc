// Loading, forward/decode consistency, fingerprints, sampling and generation
// on small generated models. Numerical agreement with an independent reference
// is checked by tests/reference/check_model_logits.py.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/model/fingerprint.h"
#include "core/model/generate.h"
#include "core/model/loader.h"
#include "core/model/random_model.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;

std::string MakeModel(const std::string& type, int64_t kv_heads, bool tie, DType dtype = DType::kF32, uint64_t seed = 7) {
  std::string dir = qlorad::testing::MakeTempDir("model_test");
  RandomModelOptions options;
  options.config = MakeConfig(type, 2, 64, 4, kv_heads, 128, 97, tie);
  options.dtype = dtype;
  options.seed = seed;
  EXPECT_OK(WriteRandomModel(dir, options));
  return dir;
}

double RelError(const at::Tensor& got, const at::Tensor& ref) {
  return ((got - ref).abs().max() / ref.abs().max()).item<double>();
}

// A dense tensor larger than the conversion chunk (16 MB) is converted in row chunks whose
// source pages are released as they go: the result must equal a one-shot conversion of
// the same bytes, with a partial last chunk, and the tensor stays readable afterwards.
TEST(TensorIoTest, ChunkedConversionEqualsOneShotConversion) {
  const std::string dir = qlorad::testing::MakeTempDir("tensor_io_chunks");
  const std::vector<int64_t> shape = {4100, 2100};  // 17.2 MB of bf16: 3994 + 106 rows
  std::vector<TensorSpec> specs = {{"big", DType::kBF16, shape}, {"after", DType::kBF16, {3, 5}}};
  const at::Tensor values = at::randn(shape).to(at::kBFloat16);
  ASSERT_OK(WriteSafetensors(dir + "/model.safetensors", specs, {}, [&](size_t i, absl::Span<uint8_t> out) {
    if (i == 0) std::memcpy(out.data(), values.data_ptr(), out.size());
    for (size_t b = 0; i == 1 && b < out.size(); ++b) out[b] = static_cast<uint8_t>(b);
    return absl::OkStatus();
  }));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Checkpoint> opened, Checkpoint::Open(dir));
  std::shared_ptr<const Checkpoint> checkpoint = std::move(opened);
  ASSERT_OK_AND_ASSIGN(at::Tensor loaded, LoadTensor(checkpoint, "big", shape, c10::Device(c10::kCPU), at::kFloat));
  EXPECT_TRUE(at::equal(loaded, values.to(at::kFloat)));
  ASSERT_OK_AND_ASSIGN(at::Tensor again, LoadTensor(checkpoint, "big", shape, c10::Device(c10::kCPU), at::kFloat));
  EXPECT_TRUE(at::equal(again, loaded));  // released pages fault back from the file
  ASSERT_OK_AND_ASSIGN(at::Tensor after, LoadTensor(checkpoint, "after", {3, 5}, c10::Device(c10::kCPU), at::kBFloat16));
  EXPECT_EQ(after.data_ptr<at::BFloat16>()[1].x, 0x0302);  // bytes 2, 3 little-endian
}

TEST(ModelTest, IncrementalDecodeMatchesFullForward) {
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(MakeModel("llama", 2, false)));
  at::NoGradGuard no_grad;
  at::Tensor tokens = at::randint(0, 97, {1, 12}, at::TensorOptions().dtype(at::kLong));
  at::Tensor full = loaded.model->forward({tokens, {}, {}, nullptr});
  auto cache = loaded.model->NewCache(1, 12);
  at::Tensor prefix = loaded.model->forward({tokens.narrow(1, 0, 5), {}, {}, cache.get()});
  std::vector<at::Tensor> parts = {prefix};
  for (int64_t i = 5; i < 12; ++i) parts.push_back(loaded.model->forward({tokens.narrow(1, i, 1), {}, {}, cache.get()}));
  EXPECT_LT(RelError(at::cat(parts, 1), full), 1e-5);
  EXPECT_EQ(cache->length(), 12);
}

TEST(ModelTest, LeftPaddedBatchMatchesSingleSequences) {
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(MakeModel("qwen2", 2, true)));
  at::NoGradGuard no_grad;
  auto opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor a = at::randint(0, 97, {1, 9}, opts), b = at::randint(0, 97, {1, 6}, opts);
  at::Tensor batch = at::cat({a, at::cat({at::zeros({1, 3}, opts), b}, 1)}, 0);
  at::Tensor mask = at::ones({2, 9}, opts);
  mask[1].narrow(0, 0, 3).zero_();
  at::Tensor positions = at::stack({at::arange(9, opts), at::cat({at::zeros({3}, opts), at::arange(6, opts)})});
  at::Tensor batched = loaded.model->forward({batch, positions, mask, nullptr});
  at::Tensor single_a = loaded.model->forward({a, {}, {}, nullptr});
  at::Tensor single_b = loaded.model->forward({b, {}, {}, nullptr});
  EXPECT_LT(RelError(batched[0], single_a[0]), 1e-5);
  EXPECT_LT(RelError(batched[1].narrow(0, 3, 6), single_b[0]), 1e-5);
}

TEST(ModelTest, ZeroCopyLoadNeverWritesTheFile) {
  std::string dir = MakeModel("llama", 4, true);
  ASSERT_OK_AND_ASSIGN(std::string before, Sha256File(dir + "/model.safetensors"));
  {
    ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(dir));
    at::NoGradGuard no_grad;
    // Even a (forbidden) in-place write to a view stays private to this process.
    loaded.model->embed_tokens().mul_(2);
  }
  ASSERT_OK_AND_ASSIGN(std::string after, Sha256File(dir + "/model.safetensors"));
  EXPECT_EQ(before, after);
}

TEST(ModelTest, Bf16CheckpointComputesInFp32OnCpu) {
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(MakeModel("mistral", 1, false, DType::kBF16)));
  EXPECT_EQ(loaded.model->dtype(), at::kFloat);
}

TEST(ModelTest, FingerprintIsStableCachedAndSensitive) {
  std::string dir = MakeModel("llama", 2, false);
  ASSERT_OK_AND_ASSIGN(LoadedModel first, LoadModel(dir));
  EXPECT_THAT(first.fingerprint, HasSubstr("sha256:"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + kFingerprintCacheFile));
  ASSERT_OK_AND_ASSIGN(LoadedModel second, LoadModel(dir));
  EXPECT_EQ(first.fingerprint, second.fingerprint);
  std::string other = MakeModel("llama", 2, false, DType::kF32, /*seed=*/8);
  ASSERT_OK_AND_ASSIGN(LoadedModel third, LoadModel(other));
  EXPECT_NE(first.fingerprint, third.fingerprint);
}

TEST(ModelTest, MissingTensorIsNamed) {
  std::string dir = MakeModel("llama", 2, false);
  ASSERT_OK_AND_ASSIGN(std::string config, ReadFileToString(dir + "/config.json"));
  // Claiming three layers when the file has two: layer 2's tensors are missing.
  std::string edited = config;
  edited.replace(edited.find("\"num_hidden_layers\": 2"), 22, "\"num_hidden_layers\": 3");
  ASSERT_OK(WriteFileAtomically(dir + "/config.json", edited));
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kNotFound, HasSubstr("model.layers.2.")));
}

TEST(ModelTest, WrongShapeIsNamed) {
  std::string dir = MakeModel("llama", 2, false);
  ASSERT_OK_AND_ASSIGN(std::string config, ReadFileToString(dir + "/config.json"));
  std::string edited = config;
  edited.replace(edited.find("\"intermediate_size\": 128"), 24, "\"intermediate_size\": 120");
  ASSERT_OK(WriteFileAtomically(dir + "/config.json", edited));
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kInvalidArgument,
                                       AllOf(HasSubstr("mlp.gate_proj.weight"), HasSubstr("[128, 64]"), HasSubstr("[120, 64]"))));
}

TEST(ModelTest, ConfigMissingFieldIsNamed) {
  std::string dir = MakeModel("llama", 2, false);
  ASSERT_OK(WriteFileAtomically(dir + "/config.json", R"({"model_type":"llama","hidden_size":64})"));
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("intermediate_size")));
}

TEST(GenerateTest, GreedyIsDeterministicAndMatchesArgmax) {
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(MakeModel("llama", 2, false)));
  GenerationOptions options;
  options.max_tokens = 6;
  ASSERT_OK_AND_ASSIGN(GenerationResult result, Generate(loaded.model, {1, 5, 9}, options));
  ASSERT_EQ(result.tokens.size(), 6u);
  // Each greedy token is the argmax of a full forward over the sequence so far.
  std::vector<int64_t> sequence = {1, 5, 9};
  at::NoGradGuard no_grad;
  for (int64_t token : result.tokens) {
    at::Tensor logits = loaded.model->forward({at::tensor(sequence, at::kLong).unsqueeze(0), {}, {}, nullptr});
    EXPECT_EQ(logits[0][-1].argmax().item<int64_t>(), token);
    sequence.push_back(token);
  }
}

TEST(GenerateTest, SeededSamplingIsReproducibleAndSeedSensitive) {
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(MakeModel("llama", 2, false)));
  GenerationOptions options;
  options.max_tokens = 24;
  options.sampling = {/*temperature=*/1.5, /*top_k=*/50, /*top_p=*/0.95, /*seed=*/42};
  ASSERT_OK_AND_ASSIGN(GenerationResult a, Generate(loaded.model, {1, 2}, options));
  ASSERT_OK_AND_ASSIGN(GenerationResult b, Generate(loaded.model, {1, 2}, options));
  EXPECT_EQ(a.tokens, b.tokens);
  options.sampling.seed = 43;
  ASSERT_OK_AND_ASSIGN(GenerationResult c, Generate(loaded.model, {1, 2}, options));
  EXPECT_NE(a.tokens, c.tokens);
}

TEST(GenerateTest, StopsOnStopTokenAndRejectsBadInput) {
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, LoadModel(MakeModel("llama", 2, false)));
  GenerationOptions options;
  options.max_tokens = 8;
  ASSERT_OK_AND_ASSIGN(GenerationResult greedy, Generate(loaded.model, {3}, options));
  options.stop_token_ids = {greedy.tokens[2]};
  ASSERT_OK_AND_ASSIGN(GenerationResult stopped, Generate(loaded.model, {3}, options));
  EXPECT_EQ(stopped.finish_reason, FinishReason::kStop);
  EXPECT_LE(stopped.tokens.size(), 3u);
  EXPECT_THAT(Generate(loaded.model, {}, options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(Generate(loaded.model, {1, 500}, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prompt[1] = 500")));
  options.sampling.top_p = 0;
  EXPECT_THAT(Generate(loaded.model, {1}, options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_p")));
}

}  // namespace
}  // namespace qlorad
