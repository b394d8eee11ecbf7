// The sampler's top-k / top-p without a full sort of the vocabulary, against a reference
// written here from the definitions: sort every finite logit descending (ties: lower id
// first), cut to top-k, then to the smallest prefix whose softmax mass reaches top-p. The
// sampler's support must be that list with those weights, a seed must draw the same
// tokens as the reference's inverse-CDF draw, and frequencies must follow the distribution.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "core/model/sampler.h"
#include "gtest/gtest.h"

namespace qlorad {
namespace {

struct Distribution {
  std::vector<int64_t> ids;   // the nucleus, descending by logit
  std::vector<double> probs;  // unnormalised weights, same order
};

Distribution ReferenceDistribution(const std::vector<float>& logits, const SamplingOptions& o) {
  std::vector<int64_t> order;
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] != -std::numeric_limits<float>::infinity()) order.push_back(static_cast<int64_t>(i));
  // Plain sampling draws in id order (nothing to sort); top-k/top-p in descending order.
  if (o.top_k > 0 || o.top_p < 1)
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
  if (o.top_k > 0 && o.top_k < static_cast<int64_t>(order.size())) order.resize(o.top_k);
  double max_logit = logits[order[0]];
  for (int64_t id : order) max_logit = std::max<double>(max_logit, logits[id]);
  Distribution d;
  double total = 0;
  for (int64_t id : order) total += std::exp((logits[id] - max_logit) / o.temperature);
  double cumulative = 0;
  for (int64_t id : order) {
    const double p = std::exp((logits[id] - max_logit) / o.temperature);
    d.ids.push_back(id);
    d.probs.push_back(p);
    cumulative += p / total;
    if (o.top_p < 1 && cumulative >= o.top_p) break;
  }
  return d;
}

int64_t ReferenceDraw(const Distribution& d, std::mt19937_64& rng) {
  const double mass = std::accumulate(d.probs.begin(), d.probs.end(), 0.0);
  double draw = std::uniform_real_distribution<double>(0.0, mass)(rng);
  for (size_t i = 0; i < d.ids.size(); ++i) {
    draw -= d.probs[i];
    if (draw < 0) return d.ids[i];
  }
  return d.ids.back();
}

std::vector<float> RandomLogits(int64_t vocab, double scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  std::vector<float> logits(vocab);
  for (float& x : logits) x = normal(rng);
  return logits;
}

at::Tensor AsTensor(const std::vector<float>& logits) {
  return at::from_blob(const_cast<float*>(logits.data()), {static_cast<int64_t>(logits.size())}, at::kFloat).clone();
}

TEST(DecodeSamplerTest, SupportIsTheFullSortNucleus) {
  // Flat logits (scale 1: the nucleus spans most of the vocabulary) and peaked ones (scale
  // 6: a few ids), 32k and 128k vocabularies, with and without top-k, ties, and a grammar
  // mask (-inf).
  for (int64_t vocab : {32000, 128256}) {
    for (double scale : {1.0, 6.0}) {
      for (const SamplingOptions o : {SamplingOptions{0.8, 0, 0.9, 1}, SamplingOptions{1.0, 0, 0.5, 1},
                                      SamplingOptions{1.0, 0, 0.999, 1}, SamplingOptions{1.2, 40, 0.95, 1},
                                      SamplingOptions{0.7, 0, 1.0, 1}, SamplingOptions{0.7, 100, 1.0, 1}}) {
        SCOPED_TRACE(::testing::Message() << "vocab " << vocab << " scale " << scale << " top_k " << o.top_k
                                          << " top_p " << o.top_p);
        std::vector<float> logits = RandomLogits(vocab, scale, vocab + static_cast<uint64_t>(scale));
        for (int64_t i = 0; i < vocab; i += 3) logits[i] = -std::numeric_limits<float>::infinity();
        for (int64_t i = 1; i < vocab; i += 97) logits[i] = logits[i + 1];  // ties
        const Distribution reference = ReferenceDistribution(logits, o);
        const SamplingSupport support = Sampler(o).Support(logits.data(), vocab);
        ASSERT_EQ(support.ids, reference.ids);  // the same ids in the same order
        std::map<int64_t, double> weight;
        for (size_t i = 0; i < reference.ids.size(); ++i) weight[reference.ids[i]] = reference.probs[i];
        for (size_t i = 0; i < support.ids.size(); ++i)
          ASSERT_NEAR(support.weights[i], weight[support.ids[i]], 1e-12 * weight[support.ids[i]]);
      }
    }
  }
}

// A seed draws the tokens the full-sort sampler drew (the draw walks the nucleus in the
// same order), for top-p alone, top-k + top-p and plain sampling.
TEST(DecodeSamplerTest, ASeedDrawsTheFullSortTokens) {
  const std::vector<float> logits = RandomLogits(32000, 2.0, 5);
  for (const SamplingOptions o : {SamplingOptions{0.9, 0, 0.9, 3}, SamplingOptions{1.1, 50, 0.8, 4},
                                  SamplingOptions{1.0, 0, 1.0, 5}}) {
    const Distribution reference = ReferenceDistribution(logits, o);
    Sampler sampler(o);
    std::mt19937_64 rng(o.seed);
    const at::Tensor t = AsTensor(logits);
    for (int draw = 0; draw < 300; ++draw)
      ASSERT_EQ(sampler.Next(t), ReferenceDraw(reference, rng)) << "top_k " << o.top_k << " top_p " << o.top_p;
  }
}

TEST(DecodeSamplerTest, FrequenciesFollowTheNucleusDistribution) {
  const std::vector<float> logits = RandomLogits(32000, 2.5, 3);
  SamplingOptions o{1.0, 0, 0.8, 11};
  const Distribution reference = ReferenceDistribution(logits, o);
  ASSERT_GT(reference.ids.size(), 5u);
  const double mass = std::accumulate(reference.probs.begin(), reference.probs.end(), 0.0);
  Sampler sampler(o);
  const at::Tensor t = AsTensor(logits);
  std::map<int64_t, int> counts;
  const int draws = 5000;
  for (int i = 0; i < draws; ++i) ++counts[sampler.Next(t)];
  for (const auto& [id, count] : counts)
    ASSERT_TRUE(std::find(reference.ids.begin(), reference.ids.end(), id) != reference.ids.end())
        << "token " << id << " is outside the nucleus";
  // The three most likely tokens: frequency within 5 standard errors of the probability.
  for (size_t i = 0; i < 3; ++i) {
    const double p = reference.probs[i] / mass;
    const double se = std::sqrt(p * (1 - p) / draws);
    EXPECT_NEAR(static_cast<double>(counts[reference.ids[i]]) / draws, p, 5 * se) << "token " << reference.ids[i];
  }
}

}  // namespace
}  // namespace qlorad
