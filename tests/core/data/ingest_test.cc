// End-to-end ingestion on real data (UCI sentiment sentences), split properties, atomic
// failure for every malformed-input class, refusals, lineage and structural hold-out access.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <type_traits>

#include "core/data/dataset_store.h"
#include "core/data/holdout_reader.h"
#include "core/util/sha256.h"
#include "tests/core/data/data_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

// The evaluation module's capability, as core/eval defines it. Only evaluation code (and this
// test, which plays its role) may define this class; holdout_access_test.cc enforces that.
namespace qlorad::eval {
class EvaluationAccess {
 public:
  static absl::StatusOr<std::unique_ptr<data::SplitReader>> OpenHoldout(const data::DatasetStore& store,
                                                                        const std::string& id) {
    return data::HoldoutReader::Open(store, id, data::HoldoutKey());
  }
};
}  // namespace qlorad::eval

namespace qlorad::data {
namespace {

namespace fs = std::filesystem;
using ::qlorad::data::testing::DirEntries;
using ::qlorad::data::testing::ReadFile;
using ::qlorad::data::testing::ReadJsonLines;
using ::qlorad::data::testing::WriteFile;
using ::qlorad::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Structural: nobody but EvaluationAccess can make a key.
static_assert(!std::is_default_constructible_v<HoldoutKey>, "HoldoutKey must not be constructible");
static_assert(!std::is_aggregate_v<HoldoutKey>, "HoldoutKey must not be aggregate-initialisable");

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = qlorad::testing::MakeTempDir("qlorad_ds_") + "/store";
    auto store = DatasetStore::Open(root_);
    ASSERT_OK(store);
    store_ = std::move(store).value();
    src_ = qlorad::testing::MakeTempDir("qlorad_src_");
    uci_ = testing::LoadUciSentences(qlorad::testing::NpmDir());
  }
  void TearDown() override {  // the sources and stores are tens of MB: do not leave them in /tmp
    std::error_code ec;
    fs::remove_all(fs::path(root_).parent_path(), ec);
    fs::remove_all(src_, ec);
  }
  // UCI sentences as classification JSONL {"text","label"} (label kept as the 0/1 integer).
  std::string UciClassification() {
    std::string out;
    for (const auto& [text, cls] : uci_) out += nlohmann::json({{"text", text}, {"label", cls}}).dump() + "\n";
    std::string path = src_ + "/uci.jsonl";
    WriteFile(path, out);
    return path;
  }
  std::string UciAlpaca() {
    std::string out;
    for (const auto& [text, cls] : uci_) {
      out += nlohmann::json({{"instruction", "Classify the sentiment of the sentence as positive or negative."},
                             {"input", text},
                             {"output", cls ? "positive" : "negative"}})
                 .dump() +
             "\n";
    }
    std::string path = src_ + "/uci_alpaca.jsonl";
    WriteFile(path, out);
    return path;
  }
  IngestOptions Options(const std::string& source, const std::string& id) {
    IngestOptions o;
    o.source_path = source;
    o.dataset_id = id;
    return o;
  }
  std::vector<Example> ReadAll(SplitReader& reader) {
    std::vector<Example> out;
    Example e;
    for (;;) {
      auto got = reader.Next(&e);
      EXPECT_OK(got);
      if (!got.ok() || !*got) break;
      out.push_back(e);
    }
    return out;
  }

  std::string root_, src_;
  std::unique_ptr<DatasetStore> store_;
  std::vector<std::pair<std::string, int>> uci_;
};

TEST_F(IngestTest, UciClassificationSplitProperties) {
  ASSERT_EQ(uci_.size(), 3000u);
  const std::string source = UciClassification();
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(Options(source, "uci")));
  const ValidationReport& v = r.validation;
  EXPECT_EQ(v.examples, 3000u);
  EXPECT_EQ(v.usable, 3000u - v.exact_duplicates.count - v.empty_required.count);
  EXPECT_EQ(v.regime, "broad");
  EXPECT_EQ(r.train_examples + r.holdout_examples, v.usable);
  EXPECT_THAT(v.token_counter, HasSubstr("estimate"));
  EXPECT_GT(v.tokens.p50, 5u);

  // Sizes within +-1 of the fraction.
  EXPECT_LE(std::fabs(static_cast<double>(r.holdout_examples) - 0.15 * v.usable), 1.0);

  ASSERT_OK_AND_ASSIGN(auto train_reader, store_->OpenTrain("uci"));
  ASSERT_OK_AND_ASSIGN(auto hold_reader, eval::EvaluationAccess::OpenHoldout(*store_, "uci"));
  std::vector<Example> train = ReadAll(*train_reader), hold = ReadAll(*hold_reader);
  EXPECT_EQ(train.size(), r.train_examples);
  EXPECT_EQ(hold.size(), r.holdout_examples);

  // Label proportions within 2 points per class (hold-out vs. all usable).
  std::map<std::string, double> all, in_hold;
  for (const Example& e : train) all[e.label] += 1;
  for (const Example& e : hold) all[e.label] += 1, in_hold[e.label] += 1;
  ASSERT_EQ(all.size(), 2u);
  for (const auto& [label, n] : all) {
    double overall = 100.0 * n / (train.size() + hold.size());
    double held = 100.0 * in_hold[label] / hold.size();
    EXPECT_NEAR(held, overall, 2.0) << "label " << label;
  }
  // No text in both splits (independent check: exact and lower-cased/trimmed text).
  auto simple = [](std::string s) {
    std::string t;
    for (char c : s) {
      if (!isspace(static_cast<unsigned char>(c))) t += static_cast<char>(tolower(static_cast<unsigned char>(c)));
    }
    return t;
  };
  std::set<std::string> train_texts;
  for (const Example& e : train) train_texts.insert(simple(e.text));
  for (const Example& e : hold) EXPECT_EQ(train_texts.count(simple(e.text)), 0u) << e.text;
  // Every stored example traces back to its source line.
  for (const Example& e : hold) {
    ASSERT_GE(e.source_line, 1);
    EXPECT_EQ(std::to_string(uci_[e.source_line - 1].second), e.label);
  }

  // Lineage in the manifest.
  ASSERT_OK_AND_ASSIGN(nlohmann::json m, store_->GetManifest("uci"));
  ASSERT_OK_AND_ASSIGN(std::string source_sha, Sha256File(source));
  EXPECT_EQ(m["source"]["sha256"], source_sha);
  EXPECT_EQ(m["split"]["seed"], 42);
  EXPECT_EQ(m["split"]["holdout_fraction"], 0.15);
  EXPECT_EQ(m["split"]["stratified_by_label"], true);
  EXPECT_EQ(m["format"], "classification");
  ASSERT_OK_AND_ASSIGN(std::string train_sha, Sha256File(root_ + "/uci/train.jsonl"));
  EXPECT_EQ(m["files"]["train"]["sha256"], train_sha);
  EXPECT_EQ(m["files"]["holdout"]["examples"], r.holdout_examples);
  EXPECT_TRUE(m.contains("pii_report"));
  EXPECT_TRUE(m["anonymization"]["enabled"].get<bool>());
  EXPECT_EQ(m["validation"]["report"]["usable"], v.usable);
  EXPECT_EQ(ReadFile(root_ + "/uci/SHA256SUMS").substr(0, 64), train_sha);
  // Immutable files.
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/uci/holdout.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
  EXPECT_THAT(store_->Ingest(Options(source, "uci")).status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("uci")));
  EXPECT_EQ(*store_->List(), (std::vector<std::string>{"uci"}));
}

TEST_F(IngestTest, SeedDeterminesTheSplit) {
  const std::string source = UciClassification();
  IngestOptions a = Options(source, "a"), b = Options(source, "b"), c = Options(source, "c");
  c.split.seed = 43;
  ASSERT_OK(store_->Ingest(a));
  ASSERT_OK(store_->Ingest(b));
  ASSERT_OK(store_->Ingest(c));
  for (const char* f : {"train.jsonl", "holdout.jsonl", "manifest.json"}) {
    std::string fa = ReadFile(root_ + "/a/" + f), fb = ReadFile(root_ + "/b/" + f);
    if (std::string(f) == "manifest.json") {  // differs only in the dataset id
      auto ma = nlohmann::json::parse(fa), mb = nlohmann::json::parse(fb);
      ma.erase("dataset_id"), mb.erase("dataset_id");
      EXPECT_EQ(ma, mb);
    } else {
      EXPECT_EQ(fa, fb) << f << " differs for the same seed";
    }
  }
  EXPECT_NE(ReadFile(root_ + "/a/holdout.jsonl"), ReadFile(root_ + "/c/holdout.jsonl"));
  // Different seed: the hold-out sets differ substantially but keep the same size.
  auto lines = [&](const std::string& id) {
    std::set<int64_t> s;
    for (const auto& j : ReadJsonLines(root_ + "/" + id + "/holdout.jsonl")) s.insert(j["source_line"].get<int64_t>());
    return s;
  };
  std::set<int64_t> ha = lines("a"), hc = lines("c");
  EXPECT_EQ(ha.size(), hc.size());
  std::vector<int64_t> common;
  std::set_intersection(ha.begin(), ha.end(), hc.begin(), hc.end(), std::back_inserter(common));
  EXPECT_LT(common.size(), ha.size() / 2);
}

TEST_F(IngestTest, FractionBoundsAndStratificationAtTenAndTwentyPercent) {
  const std::string source = UciClassification();
  for (double f : {0.10, 0.20}) {
    IngestOptions o = Options(source, "f" + std::to_string(static_cast<int>(f * 100)));
    o.split.holdout_fraction = f;
    ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(o));
    EXPECT_LE(std::fabs(static_cast<double>(r.holdout_examples) - f * r.validation.usable), 1.0);
  }
  IngestOptions bad = Options(source, "bad");
  bad.split.holdout_fraction = 0.3;
  EXPECT_THAT(store_->Ingest(bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holdout_fraction")));
}

TEST_F(IngestTest, UciAlpacaWithLabelAdherence) {
  IngestOptions o = Options(UciAlpaca(), "uci-alpaca");
  o.validation.label_set = {"positive", "negative"};
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(o));
  EXPECT_EQ(r.manifest["format"], "alpaca");
  EXPECT_TRUE(r.validation.adherence_checked);
  EXPECT_EQ(r.validation.label_set_violations.count, 0u);
  EXPECT_EQ(r.train_examples + r.holdout_examples, r.validation.usable);
  EXPECT_GT(r.validation.usable, 2900u);
  ASSERT_OK_AND_ASSIGN(auto train, store_->OpenTrain("uci-alpaca"));
  std::vector<Example> ex = ReadAll(*train);
  ASSERT_FALSE(ex.empty());
  EXPECT_EQ(ex[0].format, DatasetFormat::kAlpaca);
  EXPECT_THAT(ex[0].instruction, HasSubstr("sentiment"));
}

TEST_F(IngestTest, EveryMalformedInputFailsAndLeavesNothingBehind) {
  // 300 good lines, then one bad line of each class (and the empty file), each in its own file.
  std::string good;
  for (int i = 0; i < 300; ++i)
    good += nlohmann::json({{"prompt", "q" + std::to_string(i)}, {"completion", "a"}}).dump() + "\n";
  struct Case {
    const char* name;
    std::string contents;
    const char* kind;
  };
  std::vector<Case> cases = {
      {"bad_json", good + "{\"prompt\": \"x\" \"completion\": \"y\"}\n", "[bad_json]"},
      {"missing_field", good + "{\"prompt\": \"x\"}\n", "[missing_field]"},
      {"wrong_type", good + "{\"prompt\": \"x\", \"completion\": false}\n", "[wrong_type]"},
      {"unknown_role",
       R"({"messages":[{"role":"user","content":"q"},{"role":"robot","content":"a"}]})"
       "\n",
       "[unknown_role]"},
      {"empty_file", "", "[empty_file]"},
      {"huge_line", good + "{\"prompt\":\"" + std::string(9 << 20, 'x') + "\",\"completion\":\"y\"}\n",
       "[line_too_long]"},
      {"invalid_utf8", good + "{\"prompt\":\"\xFF\xFE\",\"completion\":\"y\"}\n", "[invalid_utf8]"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string path = src_ + "/" + c.name + ".jsonl";
    WriteFile(path, c.contents);
    EXPECT_THAT(store_->Ingest(Options(path, c.name)).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(c.kind), HasSubstr(path + ":"))));
    EXPECT_THAT(DirEntries(root_), IsEmpty()) << "partial dataset left behind";
  }
  // Refusals leave nothing behind either.
  std::string small = src_ + "/small.jsonl";
  std::string first150;
  for (int i = 0; i < 150; ++i)
    first150 += nlohmann::json({{"prompt", "q" + std::to_string(i)}, {"completion", "a"}}).dump() + "\n";
  WriteFile(small, first150);
  EXPECT_THAT(
      store_->Ingest(Options(small, "small")).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, AllOf(HasSubstr("150 usable"), HasSubstr("minimum 200"))));
  EXPECT_THAT(DirEntries(root_), IsEmpty());
  EXPECT_THAT(store_->Ingest(Options(src_ + "/does-not-exist.jsonl", "x")).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("does-not-exist")));
  EXPECT_THAT(store_->Ingest(Options(small, "../escape")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dataset_id")));
  EXPECT_THAT(DirEntries(root_), IsEmpty());
}

TEST_F(IngestTest, SmallDatasetOverrideIsRecorded) {
  std::string path = src_ + "/small.jsonl";
  std::string lines;
  for (int i = 0; i < 50; ++i)
    lines += nlohmann::json({{"text", "t" + std::to_string(i)}, {"label", i % 2 ? "a" : "b"}}).dump() + "\n";
  WriteFile(path, lines);
  IngestOptions o = Options(path, "small");
  o.allow_small_dataset = true;
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(o));
  EXPECT_EQ(r.manifest["overrides"]["small_dataset_override_used"], true);
  EXPECT_EQ(r.validation.regime, "too_small");
  EXPECT_EQ(r.holdout_examples, 8u);  // round(0.15 * 50) = 7.5 -> 8, 4 per label
}

TEST_F(IngestTest, AnnotatorDisagreementsNeedAResolution) {
  std::string lines;
  for (int i = 0; i < 400; ++i) {
    nlohmann::json j = {{"text", "sentence number " + std::to_string(i)}, {"label_a", i % 2 ? "pos" : "neg"}};
    j["label_b"] = (i % 10 == 0) ? (i % 2 ? "neg" : "pos") : j["label_a"];  // 40 disagreements
    lines += j.dump() + "\n";
  }
  lines += "{\"text\":\"Sentence number 7!\",\"label\":\"neg\"}\n";  // near-duplicate of line 8 with another label
  std::string path = src_ + "/annotated.jsonl";
  WriteFile(path, lines);
  EXPECT_THAT(store_->Ingest(Options(path, "ann")).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("40 unresolved"), HasSubstr(path + ":1:"), HasSubstr("resolution"))));
  EXPECT_THAT(DirEntries(root_), IsEmpty());
  IngestOptions o = Options(path, "ann");
  o.disagreement_policy = DisagreementPolicy::kDrop;
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(o));
  EXPECT_EQ(r.consistency.annotated, 400u);
  EXPECT_NEAR(r.consistency.percent_agreement, 90.0, 1e-9);
  ASSERT_TRUE(r.consistency.kappa.has_value());
  // Independent kappa: p_o = .9; each annotator labels 200 pos / 200 neg -> p_e = .5 -> .8
  EXPECT_NEAR(*r.consistency.kappa, 0.8, 1e-9);
  EXPECT_EQ(r.consistency.dropped, 40u);
  EXPECT_EQ(r.validation.usable, 361u);
  EXPECT_EQ(r.consistency.near_duplicate_conflicts, 1u);
  EXPECT_EQ(r.manifest["label_consistency"]["policy"], "drop");
  EXPECT_EQ(r.manifest["label_consistency"]["near_duplicate_label_conflicts"]["count"], 1);
}

TEST_F(IngestTest, PiiIsAnonymisedBeforeStorage) {
  std::string lines;
  for (int i = 0; i < 250; ++i) {
    lines += nlohmann::json({{"prompt", "Customer " + std::to_string(i) + " wrote from jan" + std::to_string(i) +
                                            "@example.pl, tel. +48 601 234 " + std::to_string(100 + i) +
                                            "; reply to jan" + std::to_string(i) + "@example.pl"},
                             {"completion", "ok"}})
                 .dump() +
             "\n";
  }
  std::string path = src_ + "/pii.jsonl";
  WriteFile(path, lines);
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(Options(path, "pii")));
  EXPECT_EQ(r.pii.by_type["EMAIL"].count, 500u);
  EXPECT_EQ(r.pii.by_type["PHONE"].count, 250u);
  EXPECT_EQ(r.pii.by_type["EMAIL"].example_lines.front(), 1);
  for (const char* f : {"train.jsonl", "holdout.jsonl", "manifest.json"}) {
    std::string stored = ReadFile(root_ + "/pii/" + f);
    EXPECT_THAT(stored, ::testing::Not(HasSubstr("@example.pl"))) << f;
    EXPECT_THAT(stored, ::testing::Not(HasSubstr("601 234"))) << f;
  }
  std::string train = ReadFile(root_ + "/pii/train.jsonl");
  EXPECT_THAT(train, HasSubstr("wrote from [EMAIL_1], tel. [PHONE_1]; reply to [EMAIL_1]"));
}

TEST_F(IngestTest, ChatPlaceholdersAreConsistentAcrossTheTurnsOfARecord) {
  std::string lines;
  for (int i = 0; i < 240; ++i) {
    std::string mail = "user" + std::to_string(i) + "@firma.pl";
    nlohmann::json j = {{"messages",
                         {{{"role", "system"}, {"content", "You are a support agent."}},
                          {{"role", "user"}, {"content", "My address is " + mail + " and card 4111 1111 1111 1111."}},
                          {{"role", "assistant"},
                           {"content", "Thanks, I will write to " + mail + " (ticket " + std::to_string(i) + ")."}}}}};
    lines += j.dump() + "\n";
  }
  std::string path = src_ + "/chat.jsonl";
  WriteFile(path, lines);
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(Options(path, "chat")));
  EXPECT_EQ(r.manifest["format"], "chat");
  EXPECT_EQ(r.pii.by_type["EMAIL"].count, 480u);
  EXPECT_EQ(r.pii.by_type["CARD"].count, 240u);
  ASSERT_OK_AND_ASSIGN(auto train, store_->OpenTrain("chat"));
  std::vector<Example> ex = ReadAll(*train);
  ASSERT_EQ(ex.size(), r.train_examples);
  for (const Example& e : ex) {
    ASSERT_EQ(e.messages.size(), 3u);
    EXPECT_EQ(e.messages[1].content, "My address is [EMAIL_1] and card [CARD_1].");
    EXPECT_THAT(e.messages[2].content, HasSubstr("write to [EMAIL_1] (ticket"));
  }
}

TEST_F(IngestTest, TamperedSplitIsDetected) {
  ASSERT_OK(store_->Ingest(Options(UciClassification(), "t")));
  std::string train = root_ + "/t/train.jsonl";
  ::chmod(train.c_str(), 0644);
  WriteFile(train, ReadFile(train) + "{\"text\":\"smuggled\",\"label\":\"1\"}\n");
  EXPECT_THAT(store_->OpenTrain("t").status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("SHA-256")));
  EXPECT_THAT(store_->OpenTrain("nope").status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
}

TEST_F(IngestTest, CsvIngestion) {
  std::string csv = "text,label\n";
  for (const auto& [text, cls] : uci_) {
    std::string quoted = "\"";
    for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    csv += quoted + "\"," + (cls ? "pos" : "neg") + "\r\n";
  }
  std::string path = src_ + "/uci.csv";
  WriteFile(path, csv);
  ASSERT_OK_AND_ASSIGN(IngestResult r, store_->Ingest(Options(path, "csv")));
  EXPECT_EQ(r.validation.examples, 3000u);
  EXPECT_EQ(r.validation.label_distribution.size(), 2u);
  EXPECT_EQ(r.validation.label_distribution["pos"] + r.validation.label_distribution["neg"], r.validation.usable);
}

}  // namespace
}  // namespace qlorad::data
