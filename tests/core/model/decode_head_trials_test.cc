// RunHeadTrials (core/model/head_trials.h): the fp32 trial's continuations equal greedy
// decoding on the libtorch path (LlamaModel::forward, no fused kernels), agreement is
// computed as documented, and bad requests are refused with the field named.
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/model/head_trials.h"
#include "core/model/loader.h"
#include "core/model/random_model.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

LlamaModel RandomModel() {
  const std::string dir = qlorad::testing::MakeTempDir("decode_head_trials");
  RandomModelOptions options;
  options.config = MakeConfig("llama", 2, 64, 4, 2, 128, 300, /*tie=*/false);
  options.seed = 11;
  EXPECT_OK(WriteRandomModel(dir, options));
  LoadOptions load;
  load.compute_fingerprint = false;
  auto loaded = LoadModel(dir, load);
  EXPECT_OK(loaded.status());
  return loaded->model;
}

// Greedy tokens after `prompt` on the libtorch path, one forward per token.
std::vector<int64_t> LibtorchGreedy(LlamaModel& model, const std::vector<int64_t>& prompt, int64_t steps) {
  at::NoGradGuard no_grad;
  auto cache = model->NewCache(1, static_cast<int64_t>(prompt.size()) + steps);
  at::Tensor logits = model->forward({at::tensor(prompt, at::kLong).unsqueeze(0), {}, {}, cache.get()});
  std::vector<int64_t> out;
  for (int64_t i = 0; i < steps; ++i) {
    out.push_back(logits[0][-1].argmax().item<int64_t>());
    logits = model->forward({at::tensor(std::vector<int64_t>{out.back()}, at::kLong).unsqueeze(0), {}, {}, cache.get()});
  }
  return out;
}

TEST(DecodeHeadTrialsTest, Fp32TrialEqualsLibtorchGreedyAndOthersAreComparedWithIt) {
  LlamaModel model = RandomModel();
  const std::vector<std::vector<int64_t>> prompts = {{5}, {17, 3, 250, 9}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}};
  HeadTrialOptions options;
  options.max_new_tokens = 6;
  auto trials = RunHeadTrials(model, prompts, options);
  ASSERT_OK(trials.status());
  ASSERT_EQ(trials->size(), 4u);
  EXPECT_EQ((*trials)[0].head, HeadPrecision::kFp32);
  for (size_t p = 0; p < prompts.size(); ++p)
    EXPECT_EQ((*trials)[0].continuations[p], LibtorchGreedy(model, prompts[p], 6)) << "prompt " << p;
  for (const HeadTrial& trial : *trials) {
    EXPECT_GT(trial.decode_tokens_per_second, 0) << HeadPrecisionName(trial.head);
    ASSERT_EQ(trial.continuations.size(), prompts.size());
    // Agreement from the continuations themselves: common prefix over fp32's tokens.
    int64_t same = 0, total = 0;
    for (size_t p = 0; p < prompts.size(); ++p) {
      const auto& want = (*trials)[0].continuations[p];
      const auto& got = trial.continuations[p];
      size_t k = 0;
      while (k < want.size() && k < got.size() && want[k] == got[k]) ++k;
      same += static_cast<int64_t>(k);
      total += static_cast<int64_t>(want.size());
    }
    EXPECT_DOUBLE_EQ(trial.token_agreement, static_cast<double>(same) / total) << HeadPrecisionName(trial.head);
  }
  EXPECT_DOUBLE_EQ((*trials)[0].token_agreement, 1.0);
  EXPECT_DOUBLE_EQ((*trials)[0].identical_share, 1.0);
}

TEST(DecodeHeadTrialsTest, StopsAtAStopToken) {
  LlamaModel model = RandomModel();
  HeadTrialOptions options;
  options.heads = {HeadPrecision::kFp32};
  options.max_new_tokens = 6;
  const std::vector<int64_t> free_run = LibtorchGreedy(model, {17, 3}, 6);
  options.stop_ids = {free_run[1]};
  auto trials = RunHeadTrials(model, {{17, 3}}, options);
  ASSERT_OK(trials.status());
  const auto& got = (*trials)[0].continuations[0];
  ASSERT_FALSE(got.empty());
  ASSERT_LE(got.size(), 2u);  // ends with the first stop token, which free_run has at index 0 or 1
  EXPECT_EQ(got.back(), free_run[1]);
  EXPECT_EQ(got, std::vector<int64_t>(free_run.begin(), free_run.begin() + got.size()));
}

TEST(DecodeHeadTrialsTest, RefusesBadRequests) {
  LlamaModel model = RandomModel();
  HeadTrialOptions options;
  EXPECT_EQ(RunHeadTrials(model, {}, options).status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = RunHeadTrials(model, {{1}, {}}, options);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("prompts[1]"), std::string::npos) << empty.status();
  options.heads = {HeadPrecision::kInt8};
  auto no_reference = RunHeadTrials(model, {{1}}, options);
  EXPECT_EQ(no_reference.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_reference.status().message().find("heads"), std::string::npos) << no_reference.status();
}

}  // namespace
}  // namespace qlorad
