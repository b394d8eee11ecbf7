#include "core/data/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "core/data/consistency.h"
#include "core/data/split.h"
#include "tests/testing/status_matchers.h"

namespace qlorad::data {
namespace {

Example Pc(const std::string& prompt, const std::string& completion, int64_t line) {
  Example e;
  e.format = DatasetFormat::kPromptCompletion;
  e.prompt = prompt;
  e.completion = completion;
  e.source_line = e.line = line;
  return e;
}

Example Cls(const std::string& text, const std::string& label, int64_t line) {
  Example e;
  e.format = DatasetFormat::kClassification;
  e.text = text;
  e.label = label;
  e.source_line = e.line = line;
  return e;
}

TEST(ValidatorTest, CountsDuplicatesEmptiesLengthsAndAdherence) {
  ValidationOptions options;
  options.label_set = {"yes", "no"};
  options.max_seq_len = 6;
  // A fake tokenizer: one token per character, so lengths are exact and checkable.
  options.token_counter = {"chars", [](std::string_view s) { return s.size(); }};
  options.min_usable = 3;
  options.warn_below = 4;
  ASSERT_OK_AND_ASSIGN(auto v, Validator::Create(options));
  EXPECT_EQ(v->Add(Pc("ab", "yes", 1)), Validator::Verdict::kKeep);  // 5 tokens
  EXPECT_EQ(v->Add(Pc("ab", "yes", 2)), Validator::Verdict::kExactDuplicate);
  EXPECT_EQ(v->Add(Pc("AB ", "yes", 3)), Validator::Verdict::kKeep);  // normalised duplicate, 6 tokens
  EXPECT_EQ(v->Add(Pc("", "no", 4)), Validator::Verdict::kEmptyRequired);
  EXPECT_EQ(v->Add(Pc("abcd", "maybe", 5)), Validator::Verdict::kKeep);  // 9 tokens: over-length, not in label set
  ValidationReport r = v->Finish();
  EXPECT_EQ(r.examples, 5u);
  EXPECT_EQ(r.usable, 3u);
  EXPECT_EQ(r.exact_duplicates.count, 1u);
  EXPECT_EQ(r.exact_duplicates.lines, (std::vector<int64_t>{2}));
  EXPECT_EQ(r.normalized_duplicates.lines, (std::vector<int64_t>{3}));
  EXPECT_EQ(r.empty_required.lines, (std::vector<int64_t>{4}));
  EXPECT_EQ(r.empty_fields["prompt"], 1u);
  EXPECT_EQ(r.tokens.min, 5u);
  EXPECT_EQ(r.tokens.max, 9u);
  EXPECT_EQ(r.tokens.p50, 6u);
  EXPECT_EQ(r.tokens.total, 20u);
  EXPECT_EQ(r.token_counter, "chars");
  EXPECT_EQ(r.over_length.lines, (std::vector<int64_t>{5}));
  EXPECT_EQ(r.label_set_violations.lines, (std::vector<int64_t>{5}));
  EXPECT_EQ(r.regime, "small");
  EXPECT_FALSE(r.refused);
}

TEST(ValidatorTest, ThresholdsAndRegimes) {
  auto regime_for = [](int n) {
    auto v = *Validator::Create({});
    for (int i = 0; i < n; ++i) v->Add(Cls("text " + std::to_string(i), "a", i + 1));
    return v->Finish();
  };
  EXPECT_TRUE(regime_for(199).refused);
  EXPECT_EQ(regime_for(199).regime, "too_small");
  EXPECT_FALSE(regime_for(200).refused);
  EXPECT_EQ(regime_for(250).regime, "small");
  EXPECT_FALSE(regime_for(250).warnings.empty());
  EXPECT_EQ(regime_for(300).regime, "narrow");
  EXPECT_EQ(regime_for(800).regime, "narrow");
  EXPECT_EQ(regime_for(900).regime, "between");
  EXPECT_EQ(regime_for(1000).regime, "broad");
}

TEST(ValidatorTest, EstimateIsLabelledAndSane) {
  TokenCounter est = EstimateTokenCounter();
  EXPECT_THAT(est.name, ::testing::HasSubstr("estimate"));
  EXPECT_EQ(est.count("one two three"), 4u);  // 13 bytes / 4 rounds up to 4 > 3 words
  EXPECT_EQ(est.count("a b c d e f"), 6u);
}

TEST(ValidatorTest, RegexAndJsonTemplateAdherence) {
  ValidationOptions options;
  options.target_regex = "(positive|negative)";
  ASSERT_OK_AND_ASSIGN(auto v, Validator::Create(options));
  v->Add(Pc("a", "positive", 1));
  v->Add(Pc("b", "positive!", 2));
  EXPECT_EQ(v->Finish().regex_violations.lines, (std::vector<int64_t>{2}));

  options.target_regex.clear();
  options.json_template = nlohmann::json::parse(R"({"name": "", "age": 0, "tags": [""], "meta": {"ok": true}})");
  ASSERT_OK_AND_ASSIGN(v, Validator::Create(options));
  v->Add(Pc("a", R"({"name":"x","age":3.5,"tags":["a","b"],"meta":{"ok":false},"extra":1})", 1));
  v->Add(Pc("b", R"({"name":"x","age":"3","tags":[],"meta":{"ok":false}})", 2));
  v->Add(Pc("c", R"({"name":"x","age":3,"tags":[1],"meta":{"ok":false}})", 3));
  v->Add(Pc("d", "not json", 4));
  v->Add(Pc("e", R"({"name":"x","age":3,"tags":[]})", 5));
  EXPECT_EQ(v->Finish().template_violations.lines, (std::vector<int64_t>{2, 3, 4, 5}));

  options.json_template = nlohmann::json::array();
  EXPECT_FALSE(Validator::Create(options).ok());
  options.json_template.reset();
  options.target_regex = "(";
  EXPECT_FALSE(Validator::Create(options).ok());
}

TEST(ConsistencyTest, KappaMatchesTextbookExample) {
  // 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o = .7, p_e = .5, kappa = .4.
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int i = 0; i < 20; ++i) pairs.push_back({"yes", "yes"});
  for (int i = 0; i < 5; ++i) pairs.push_back({"yes", "no"});
  for (int i = 0; i < 10; ++i) pairs.push_back({"no", "yes"});
  for (int i = 0; i < 15; ++i) pairs.push_back({"no", "no"});
  EXPECT_NEAR(*CohenKappa(pairs), 0.4, 1e-12);
  // Perfect agreement on one label only: p_e = 1, kappa undefined.
  EXPECT_FALSE(CohenKappa({{"a", "a"}, {"a", "a"}}).has_value());
  // Three classes (Fleiss/Cohen example): computed by hand.
  // a/a 5, a/b 1, b/b 4, b/c 2, c/c 3, c/a 1 (n=16): p_o = 12/16; row a 6, b 6, c 4; col a 6, b 5, c 5.
  std::vector<std::pair<std::string, std::string>> three;
  auto add = [&](const char* x, const char* y, int n) {
    for (int i = 0; i < n; ++i) three.push_back({x, y});
  };
  add("a", "a", 5), add("a", "b", 1), add("b", "b", 4), add("b", "c", 2), add("c", "c", 3), add("c", "a", 1);
  double po = 12.0 / 16, pe = (6.0 * 6 + 6.0 * 5 + 4.0 * 5) / 256;
  EXPECT_NEAR(*CohenKappa(three), (po - pe) / (1 - pe), 1e-12);
}

TEST(ConsistencyTest, ResolutionPoliciesAndNearDuplicates) {
  auto annotated = [](const char* a, const char* b, int line, const char* resolution = nullptr) {
    Example e = Cls("t" + std::to_string(line), "", line);
    e.label_a = a;
    e.label_b = b;
    if (a == std::string(b)) e.label = a;
    if (resolution) e.resolution = std::string(resolution), e.label = resolution;
    return e;
  };
  ConsistencyChecker refuse(DisagreementPolicy::kRefuse);
  Example e1 = annotated("pos", "pos", 1), e2 = annotated("pos", "neg", 2), e3 = annotated("neg", "pos", 3, "neg");
  EXPECT_TRUE(refuse.Resolve(&e1));
  EXPECT_TRUE(refuse.Resolve(&e2));
  EXPECT_TRUE(refuse.Resolve(&e3));
  EXPECT_EQ(e3.label, "neg");
  ConsistencyReport r = refuse.Finish();
  EXPECT_EQ(r.annotated, 3u);
  EXPECT_NEAR(r.percent_agreement, 100.0 / 3, 1e-9);
  EXPECT_EQ(r.unresolved, 1u);
  EXPECT_EQ(r.resolved_by_column, 1u);
  EXPECT_THAT(refuse.CheckResolved("f.jsonl"),
              qlorad::testing::StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("f.jsonl:2:")));

  ConsistencyChecker prefer_b(DisagreementPolicy::kPreferB), drop(DisagreementPolicy::kDrop);
  Example e4 = annotated("pos", "neg", 4), e5 = annotated("pos", "neg", 5);
  EXPECT_TRUE(prefer_b.Resolve(&e4));
  EXPECT_EQ(e4.label, "neg");
  EXPECT_OK(prefer_b.CheckResolved("f"));
  EXPECT_FALSE(drop.Resolve(&e5));
  EXPECT_EQ(drop.Finish().dropped, 1u);

  ConsistencyChecker near(DisagreementPolicy::kRefuse);
  auto key = [](const std::string& t) { return StableHash64(NormalizeNearDuplicate(t)); };
  near.AddNearDuplicateKey(key("Great movie!"), Cls("Great movie!", "1", 1));
  near.AddNearDuplicateKey(key("great  movie"), Cls("great  movie", "1", 2));
  near.AddNearDuplicateKey(key("GREAT movie..."), Cls("GREAT movie...", "0", 3));
  ConsistencyReport nr = near.Finish();
  EXPECT_EQ(nr.near_duplicate_conflicts, 1u);
  ASSERT_EQ(nr.near_duplicates_listed.size(), 1u);
  EXPECT_EQ(nr.near_duplicates_listed[0].first_line, 1);
  EXPECT_EQ(nr.near_duplicates_listed[0].line, 3);
}

TEST(SplitPlannerTest, GroupsNeverStraddleAndQuotasAreExact) {
  SplitOptions options;
  options.holdout_fraction = 0.2;
  options.seed = 7;
  SplitPlanner planner(options);
  std::mt19937 rng(1);
  std::vector<uint64_t> keys;
  std::vector<std::string> labels;
  for (int i = 0; i < 1000; ++i) {
    uint64_t key = (i % 10 == 0) ? 5 + (i % 3) : 1000 + i;  // a few big duplicate groups
    std::string label = (rng() % 4 == 0) ? "rare" : "common";
    keys.push_back(key);
    labels.push_back(label);
    planner.Add(key, label);
  }
  std::vector<bool> h = planner.Plan();
  size_t total = std::count(h.begin(), h.end(), true);
  EXPECT_NEAR(static_cast<double>(total), 200.0, 1.0);
  std::map<uint64_t, std::set<bool>> sides;
  for (size_t i = 0; i < h.size(); ++i) sides[keys[i]].insert(h[i]);
  for (const auto& [k, s] : sides) EXPECT_EQ(s.size(), 1u) << "group " << k << " straddles the split";
  EXPECT_EQ(planner.Plan(), h);  // deterministic
  EXPECT_FALSE(SplitOptions{0.25}.Validate().ok());
  EXPECT_FALSE(SplitOptions{0.05}.Validate().ok());
  EXPECT_OK(SplitOptions{0.10}.Validate());
}

}  // namespace
}  // namespace qlorad::data
