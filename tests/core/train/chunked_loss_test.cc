// The chunked vocabulary loss (chunked_loss.h) against the plain one (one logits tensor,
// log_softmax, nll_loss, autograd's backward): the loss, the gradient reaching the hidden
// states, and the gradients of a LoRA on the head. With dropout in the head, the plain
// reference runs chunk by chunk (dropout draws per chunk): the chunked backward must
// replay the forward's masks to match it.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "core/model/linear.h"
#include "core/train/chunked_loss.h"
#include "core/train/lora_model.h"
#include "core/util/training_random.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

constexpr int64_t kRows = 50, kHidden = 24, kVocab = 97;

double MaxRelativeDifference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

struct Result {
  at::Tensor loss, grad_hidden;
  std::vector<at::Tensor> param_grads;
};

at::Tensor PlainNll(LinearLayer& head, const at::Tensor& hidden, const at::Tensor& targets) {
  return at::nll_loss(at::log_softmax(head.forward(hidden).to(at::kFloat), -1), targets, {}, at::Reduction::Sum);
}

// chunk_rows 0: one plain pass; > 0 with `plain`: plain passes over the same chunks.
Result RunLoss(LinearLayer& head, const at::Tensor& hidden_in, const at::Tensor& targets, int64_t chunk_rows,
               bool plain = false, uint64_t dropout_seed = 42) {
  for (auto& p : head.parameters()) p.mutable_grad() = at::Tensor();
  at::Tensor hidden = hidden_in.detach().clone().requires_grad_(true);
  ScopedTrainingRandom random(MakeSeededGenerator(hidden.device(), dropout_seed), {});
  at::Tensor loss;
  if (chunk_rows == 0) {
    loss = PlainNll(head, hidden, targets);
  } else if (!plain) {
    loss = ChunkedHeadNll(head, hidden, targets, chunk_rows);
  } else {
    loss = at::zeros({});
    for (int64_t start = 0; start < kRows; start += chunk_rows) {
      const int64_t end = std::min(kRows, start + chunk_rows);
      loss = loss + PlainNll(head, hidden.slice(0, start, end), targets.slice(0, start, end));
    }
  }
  (loss * 0.37).backward();
  Result r{loss.detach(), hidden.grad(), {}};
  for (auto& p : head.parameters())
    if (p.requires_grad()) r.param_grads.push_back(p.grad().clone());
  return r;
}

void ExpectSame(const Result& chunked, const Result& plain) {
  EXPECT_LT(MaxRelativeDifference(chunked.loss, plain.loss), 1e-6);
  EXPECT_LT(MaxRelativeDifference(chunked.grad_hidden, plain.grad_hidden), 1e-6);
  ASSERT_EQ(chunked.param_grads.size(), plain.param_grads.size());
  for (size_t i = 0; i < plain.param_grads.size(); ++i) {
    ASSERT_GT(plain.param_grads[i].abs().max().item<double>(), 0) << "param " << i;
    EXPECT_LT(MaxRelativeDifference(chunked.param_grads[i], plain.param_grads[i]), 1e-6) << "param " << i;
  }
}

TEST(ChunkedLossTest, DenseHeadMatchesThePlainLossForEveryChunkSize) {
  at::manual_seed(3);
  DenseLinear head(at::randn({kVocab, kHidden}) / 5, std::nullopt);
  const at::Tensor hidden = at::randn({kRows, kHidden});
  const at::Tensor targets = at::randint(0, kVocab, {kRows}, at::TensorOptions().dtype(at::kLong));
  const Result plain = RunLoss(head, hidden, targets, 0);
  for (int64_t chunk : {1, 7, 49, 50, 64}) {
    SCOPED_TRACE(chunk);
    ExpectSame(RunLoss(head, hidden, targets, chunk), plain);
  }
}

TEST(ChunkedLossTest, LoraHeadWithDropoutGetsThePlainGradients) {
  at::manual_seed(4);
  ASSERT_OK_AND_ASSIGN(LoraLinear lora, LoraLinearImpl::Create(LoraLinearOptions(4, 8).dropout(0.3),
                                                               at::randn({kVocab, kHidden}) / 5, std::nullopt));
  {
    at::NoGradGuard no_grad;
    lora->lora_B.normal_(0, 0.1);
  }
  LoraLinearLayer head(lora);
  const at::Tensor hidden = at::randn({kRows, kHidden});
  const at::Tensor targets = at::randint(0, kVocab, {kRows}, at::TensorOptions().dtype(at::kLong));
  head.train();
  const Result chunked = RunLoss(head, hidden, targets, 9);
  ExpectSame(chunked, RunLoss(head, hidden, targets, 9, /*plain=*/true));
  // Other dropout masks give other gradients: the comparison above can fail.
  Result other_masks = RunLoss(head, hidden, targets, 9, /*plain=*/true, /*dropout_seed=*/43);
  EXPECT_GT(MaxRelativeDifference(other_masks.grad_hidden, chunked.grad_hidden), 1e-3);
  head.eval();
  ExpectSame(RunLoss(head, hidden, targets, 9), RunLoss(head, hidden, targets, 0));
}

}  // namespace
}  // namespace qlorad
