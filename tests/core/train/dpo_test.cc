// DPO (method dpo: dpo_loss.h, dpo_trainer.h). The loss against its closed form; the
// per-row completion log-probs against a plain full-logits forward of each example alone;
// the reference model (adapters disabled) against a model loaded without adapters; the
// gradient against central finite differences; a run that learns a synthetic preference;
// the preference dataset format and the option checks. The float64 reference of a trained
// adapter's hold-out scores is tests/reference/check_dpo.py (ctest dpo_reference).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/data/example.h"
#include "core/model/random_model.h"
#include "core/train/dpo_loss.h"
#include "core/train/dpo_trainer.h"
#include "core/train/lora_model.h"
#include "core/train/memory_planner.h"
#include "core/train/training_batch.h"
#include "core/train/training_options.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/train/adapted_model.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad {
namespace {

using ::qlorad::testing::StatusIs;
using ::testing::HasSubstr;
using Adapted = qlorad::testing::AdaptedModel;

constexpr int64_t kVocab = 60;

const std::string& ModelDir() {
  static const std::string dir = [] {
    std::string d = qlorad::testing::MakeTempDir("dpo_test_model");
    RandomModelOptions options;
    options.config = MakeConfig("llama", 2, 64, 4, 2, 128, kVocab, false);
    options.seed = 23;
    EXPECT_OK(WriteRandomModel(d, options));
    return d;
  }();
  return dir;
}

TrainingExample Render(const std::vector<int64_t>& prompt, const std::vector<int64_t>& completion) {
  TrainingExample ex;
  for (int64_t id : prompt) ex.ids.push_back(id), ex.trainable.push_back(0);
  for (int64_t id : completion) ex.ids.push_back(id), ex.trainable.push_back(1);
  return ex;
}

// Random prompts of 3-8 tokens; completions of 1-3 random tokens, different per side.
std::vector<PreferencePair> RandomPairs(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto tokens = [&](int64_t n) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<int64_t>(rng() % kVocab));
    return out;
  };
  std::vector<PreferencePair> pairs;
  for (int i = 0; i < count; ++i) {
    const auto prompt = tokens(3 + static_cast<int64_t>(rng() % 6));
    auto chosen = tokens(1 + static_cast<int64_t>(rng() % 3));
    auto rejected = tokens(1 + static_cast<int64_t>(rng() % 3));
    rejected[0] = (chosen[0] + 1) % kVocab;
    pairs.push_back({Render(prompt, chosen), Render(prompt, rejected)});
  }
  return pairs;
}

// Σ log p(ids[t] | ids[<t]) over trainable t, from one full forward of the example alone.
double FullForwardLogProb(LlamaModel& model, const TrainingExample& ex) {
  at::NoGradGuard no_grad;
  const at::Tensor ids = at::tensor(ex.ids, at::TensorOptions().dtype(at::kLong)).unsqueeze(0);
  const at::Tensor logp = at::log_softmax(model->forward({ids, {}, {}, nullptr})[0].to(at::kDouble), -1);
  double sum = 0;
  for (size_t t = 1; t < ex.ids.size(); ++t)
    if (ex.trainable[t]) sum += logp[t - 1][ex.ids[t]].item<double>();
  return sum;
}

TEST(DpoLoss, MatchesTheClosedForm) {
  at::manual_seed(1);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor pc = at::randn({9}, f64) * 5, pr = at::randn({9}, f64) * 5;
  const at::Tensor rc = at::randn({9}, f64) * 5, rr = at::randn({9}, f64) * 5;
  const double beta = 0.3;
  const DpoTerms terms = DpoLoss(pc, pr, rc, rr, beta);
  for (int64_t i = 0; i < 9; ++i) {
    const double z = beta * ((pc[i].item<double>() - rc[i].item<double>()) - (pr[i].item<double>() - rr[i].item<double>()));
    EXPECT_NEAR(terms.losses[i].item<double>(), std::log1p(std::exp(-z)), 1e-12);
    EXPECT_NEAR(terms.chosen_rewards[i].item<double>(), beta * (pc[i].item<double>() - rc[i].item<double>()), 1e-12);
    EXPECT_NEAR(terms.rejected_rewards[i].item<double>(), beta * (pr[i].item<double>() - rr[i].item<double>()), 1e-12);
  }
}

TEST(SequenceLogProbs, EqualsAFullForwardOfEachExampleAlone) {
  Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.0);
  m.loaded.model->eval();
  const std::vector<TrainingExample> rows = InterleavePairs(RandomPairs(4, 7));
  std::vector<size_t> all(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) all[i] = i;
  at::NoGradGuard no_grad;
  const at::Tensor got = SequenceLogProbs(m.loaded.model, MakeBatch(rows, all, 512)).to(at::kDouble);
  for (size_t i = 0; i < rows.size(); ++i) {
    const double want = FullForwardLogProb(m.loaded.model, rows[i]);
    EXPECT_NEAR(got[i].item<double>(), want, 1e-4 * std::abs(want) + 1e-4) << "row " << i;
    EXPECT_LT(want, 0.0);
  }
}

TEST(ScopedAdaptersDisabled, GivesTheBaseAndRestoresTheAdapter) {
  Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.0);
  auto base = LoadModel(ModelDir(), {});
  ASSERT_OK(base.status());
  m.loaded.model->eval();
  base->model->eval();
  const TrainingExample ex = RandomPairs(1, 3)[0].chosen;
  const double adapted = FullForwardLogProb(m.loaded.model, ex);
  const double plain = FullForwardLogProb(base->model, ex);
  {
    ScopedAdaptersDisabled disabled(*m.modules);
    EXPECT_NEAR(FullForwardLogProb(m.loaded.model, ex), plain, 1e-5 * std::abs(plain));
  }
  EXPECT_GT(std::abs(adapted - plain), 1e-3) << "the adapter (random B) must change the log-prob";
  EXPECT_DOUBLE_EQ(FullForwardLogProb(m.loaded.model, ex), adapted);
}

// Mean DPO loss of `pairs` with fixed reference log-probs (as the trainer computes it).
at::Tensor MeanDpoLoss(Adapted& m, const std::vector<PreferencePair>& pairs, const at::Tensor& reference, double beta) {
  const std::vector<TrainingExample> rows = InterleavePairs(pairs);
  std::vector<size_t> all(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) all[i] = i;
  const at::Tensor policy = SequenceLogProbs(m.loaded.model, MakeBatch(rows, all, 512)).view({-1, 2});
  const at::Tensor ref = reference.to(at::kFloat);
  return DpoLoss(policy.select(1, 0), policy.select(1, 1), ref.select(1, 0), ref.select(1, 1), beta).losses.mean();
}

TEST(DpoGradient, MatchesCentralFiniteDifferences) {
  Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.0);
  m.loaded.model->eval();
  const std::vector<PreferencePair> pairs = RandomPairs(5, 11);
  auto reference = ReferenceLogProbs(m.loaded.model, *m.modules, pairs, 4, 512);
  ASSERT_OK(reference.status());
  const double beta = 0.5;
  std::vector<at::Tensor> params = LoraParameters(*m.modules);
  MeanDpoLoss(m, pairs, *reference, beta).backward();
  at::manual_seed(9);
  std::vector<at::Tensor> direction;
  double directional = 0;
  for (auto& p : params) {
    direction.push_back(at::randn_like(p));
    directional += (p.grad() * direction.back()).sum().item<double>();
  }
  auto loss_at = [&](double step) {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].add_(direction[i], step);
    const double loss = MeanDpoLoss(m, pairs, *reference, beta).item<double>();
    for (size_t i = 0; i < params.size(); ++i) params[i].sub_(direction[i], step);
    return loss;
  };
  const double eps = 1e-3;
  const double numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
  EXPECT_NEAR(numeric, directional, 5e-3 * std::abs(directional) + 1e-3);
  EXPECT_GT(std::abs(directional), 1e-3) << "a vanishing gradient would make the check empty";
}

// Random prompts; the chosen completion is always token 7, the rejected one token 9.
std::vector<PreferencePair> FixedPreferencePairs(int count, uint64_t seed) {
  std::vector<PreferencePair> pairs;
  for (const PreferencePair& random : RandomPairs(count, seed)) {
    std::vector<int64_t> prompt;
    for (size_t t = 0; t < random.chosen.ids.size() && !random.chosen.trainable[t]; ++t) prompt.push_back(random.chosen.ids[t]);
    pairs.push_back({Render(prompt, {7}), Render(prompt, {9})});
  }
  return pairs;
}

TrainerOptions FastOptions() {
  TrainerOptions o;
  o.epochs = 6;
  o.batch_size = 8;
  o.learning_rate = 1e-2;
  o.warmup_ratio = 0;
  o.schedule = "constant";
  o.max_grad_norm = 1.0;
  o.dpo_beta = 0.5;
  o.eval_fraction = 0.25;
  o.seed = 3;
  return o;
}

TEST(TrainDpo, LearnsAPreferenceAndKeepsTheBaseAsReference) {
  Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.0);
  {
    at::NoGradGuard no_grad;
    for (auto& [name, layer] : *m.modules) layer->lora_B.zero_();  // the usual init: adapter = base
  }
  const std::vector<PreferencePair> pairs = FixedPreferencePairs(64, 5);
  std::vector<TrainingEvent> events;
  auto summary = TrainDpo(m.loaded.model, *m.modules, pairs, FastOptions(), [&](const TrainingEvent& e) {
    events.push_back(e);
    return true;
  });
  ASSERT_OK(summary.status());
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.front().dpo);
  EXPECT_NEAR(events.front().loss, std::log(2.0), 1e-5) << "step 1 starts at the base: every reward is 0";
  EXPECT_EQ(summary->dpo_eval_start.accuracy, 0.0) << "ties are not wins";
  ASSERT_FALSE(summary->dpo_evals.empty());
  const DpoMetrics& last = summary->dpo_evals.back();
  EXPECT_EQ(last.pairs, 16);
  EXPECT_GT(last.accuracy, 0.9);
  EXPECT_GT(last.margin, 0.5);
  EXPECT_LT(last.loss, 0.4);
  EXPECT_LT(summary->step_losses.back(), summary->step_losses.front());
  auto base = LoadModel(ModelDir(), {});
  ASSERT_OK(base.status());
  auto scores = ScorePreferences(m.loaded.model, *m.modules, {pairs[0]}, 1, 512);
  ASSERT_OK(scores.status());
  EXPECT_NEAR(scores->reference_chosen[0], FullForwardLogProb(base->model, pairs[0].chosen), 1e-4);
  EXPECT_GT(scores->policy_chosen[0] - scores->policy_rejected[0],
            scores->reference_chosen[0] - scores->reference_rejected[0] + 0.5);
}

TEST(TrainDpo, IsDeterministicForASeed) {
  const std::vector<PreferencePair> pairs = RandomPairs(16, 2);
  TrainerOptions o = FastOptions();
  o.epochs = 1;
  o.eval_fraction = 0;
  std::vector<double> losses[2];
  for (auto& out : losses) {
    Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.1);
    auto summary = TrainDpo(m.loaded.model, *m.modules, pairs, o);
    ASSERT_OK(summary.status());
    out = summary->step_losses;
  }
  EXPECT_EQ(losses[0], losses[1]);
}

TEST(TrainDpo, AnInterruptedRunResumesBitIdentical) {
  const std::vector<PreferencePair> pairs = RandomPairs(40, 4);
  TrainerOptions o = FastOptions();
  o.epochs = 2;
  o.batch_size = 4;
  o.gradient_accumulation = 2;
  o.eval_fraction = 0.2;
  o.eval_every_steps = 3;
  auto run = [&](const std::string& dir, int64_t stop_after, std::vector<at::Tensor>* params) {
    Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.1);
    auto summary = TrainDpo(m.loaded.model, *m.modules, pairs, o,
                            [&](const TrainingEvent& e) { return stop_after <= 0 || e.step < stop_after; },
                            CheckpointOptions{dir, 4, 2});
    EXPECT_OK(summary.status());
    if (params != nullptr)
      for (const auto& p : LoraParameters(*m.modules)) params->push_back(p.detach().clone());
    return summary.ok() ? *summary : TrainingSummary{};
  };
  std::vector<at::Tensor> straight_params, resumed_params;
  const TrainingSummary straight = run(qlorad::testing::MakeTempDir("dpo_resume_a"), 0, &straight_params);
  const std::string dir = qlorad::testing::MakeTempDir("dpo_resume_b");
  const TrainingSummary interrupted = run(dir, 5, nullptr);
  EXPECT_TRUE(interrupted.cancelled);
  EXPECT_EQ(interrupted.steps, 5);
  const TrainingSummary resumed = run(dir, 0, &resumed_params);
  EXPECT_EQ(resumed.resumed_from_step, 5);
  EXPECT_EQ(resumed.step_losses, straight.step_losses);
  EXPECT_EQ(resumed.eval_losses, straight.eval_losses);
  ASSERT_EQ(resumed.dpo_steps.size(), static_cast<size_t>(straight.steps)) << "the metric history travels";
  EXPECT_EQ(resumed.dpo_steps[2].accuracy, straight.dpo_steps[2].accuracy);
  EXPECT_EQ(resumed.dpo_eval_start.loss, straight.dpo_eval_start.loss);
  ASSERT_EQ(resumed_params.size(), straight_params.size());
  for (size_t i = 0; i < straight_params.size(); ++i) EXPECT_TRUE(resumed_params[i].equal(straight_params[i])) << i;
  o.dpo_beta = 0.7;  // another run: the checkpoint must not be taken for it
  Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.1);
  EXPECT_THAT(TrainDpo(m.loaded.model, *m.modules, pairs, o, nullptr, CheckpointOptions{dir, 4, 2}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("different run")));
}

TEST(TrainDpo, RefusesWhatItCannotDo) {
  Adapted m = qlorad::testing::LoadAdaptedModel(ModelDir(), false, 0.0);
  TrainerOptions o = FastOptions();
  o.packing = true;
  EXPECT_THAT(TrainDpo(m.loaded.model, *m.modules, RandomPairs(4, 1), o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("packing")));
  std::vector<PreferencePair> bad = RandomPairs(2, 1);
  bad[1].rejected.trainable.assign(bad[1].rejected.trainable.size(), 0);
  EXPECT_THAT(TrainDpo(m.loaded.model, *m.modules, bad, FastOptions()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pair 1 rejected")));
  o = FastOptions();
  o.dpo_beta = 0;
  EXPECT_THAT(TrainDpo(m.loaded.model, *m.modules, RandomPairs(4, 1), o).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dpo_beta")));
}

TEST(DpoOptions, MethodIsValidatedAndStored) {
  TrainingOptions options;
  options.dataset_id = "prefs";
  options.method = "dpo";
  options.trainer.dpo_beta = 0.25;
  auto round = TrainingOptionsFromJson(TrainingOptionsToJson(options));
  ASSERT_OK(round.status());
  EXPECT_EQ(round->method, "dpo");
  EXPECT_EQ(round->trainer.dpo_beta, 0.25);
  nlohmann::json old = TrainingOptionsToJson(options);
  old.erase("method");
  old["trainer"].erase("dpo_beta");
  EXPECT_EQ(TrainingOptionsFromJson(old)->method, "sft") << "a stored spec without the key is SFT";
  options.method = "ppo";
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("method: 'ppo'")));
  options.method = "dpo";
  options.trainer.packing = true;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hyperparameters.packing")));
  options.trainer.packing = false;
  options.lora.init = "pissa";
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lora.init: pissa")));
}

TEST(DpoDataFormat, PreferenceLinesParseDetectAndRoundTrip) {
  const nlohmann::json line = {{"prompt", "Review: fine film"}, {"chosen", "positive"}, {"rejected", "negative"}};
  ASSERT_EQ(data::DetectFormat(line), data::DatasetFormat::kPreference);
  data::Example ex;
  ASSERT_FALSE(data::ExampleFromJson(line, data::DatasetFormat::kPreference, &ex).has_value());
  EXPECT_EQ(ex.chosen, "positive");
  EXPECT_EQ(data::InputSide(ex), "Review: fine film");
  std::vector<std::string> fields;
  data::ForEachTextField(ex, [&](std::string_view name, const std::string&) { fields.emplace_back(name); });
  EXPECT_THAT(fields, ::testing::ElementsAre("prompt", "chosen", "rejected")) << "PII scrubbing sees every text";
  data::Example back;
  ASSERT_FALSE(data::ExampleFromJson(nlohmann::json::parse(data::ExampleToJsonLine(ex)), data::DatasetFormat::kPreference, &back));
  EXPECT_EQ(back.rejected, "negative");
  auto same = data::ExampleFromJson({{"prompt", "p"}, {"chosen", "x"}, {"rejected", "x"}}, data::DatasetFormat::kPreference, &ex);
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(same->kind, "same_completion");
  auto missing = data::ExampleFromJson({{"prompt", "p"}, {"chosen", "x"}}, data::DatasetFormat::kPreference, &ex);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->field, "rejected");
  EXPECT_EQ(data::ParseFormatName("preference").value(), data::DatasetFormat::kPreference);
  EXPECT_EQ(data::DetectFormat({{"prompt", "p"}, {"completion", "c"}, {"chosen", "x"}}), data::DatasetFormat::kPromptCompletion)
      << "a stray key does not turn a prompt/completion line into a pair";
  EXPECT_EQ(data::DetectFormat({{"prompt", "p"}, {"chosen", "x"}}), data::DatasetFormat::kPreference)
      << "a pair missing one side is read as a pair, so the error names the missing side";
}

TEST(DpoPlan, APairIsTwoRows) {
  PlanInput in;
  in.config = *PresetModelConfig("7B");
  in.batch = 8;
  ASSERT_OK_AND_ASSIGN(MemoryPlan sft_eight_rows, PlanMemory(in));
  in.batch = 4;
  ASSERT_OK_AND_ASSIGN(MemoryPlan sft_four_rows, PlanMemory(in));
  in.dpo = true;
  ASSERT_OK_AND_ASSIGN(MemoryPlan dpo_four_pairs, PlanMemory(in));
  EXPECT_EQ(dpo_four_pairs.total_bytes, sft_eight_rows.total_bytes);
  EXPECT_GT(dpo_four_pairs.total_bytes, sft_four_rows.total_bytes);
  EXPECT_EQ(dpo_four_pairs.trainable_params, sft_four_rows.trainable_params);
  EXPECT_THAT(FormatPlan(in, dpo_four_pairs), HasSubstr("DPO"));
}

}  // namespace
}  // namespace qlorad
