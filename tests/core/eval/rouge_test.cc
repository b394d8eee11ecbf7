// ROUGE on the test vectors published with Google's rouge-score
// (google-research/google-research, rouge/rouge_scorer_test.py and
// rouge/tokenize_test.py; the two-line testdata/target.txt and testdata/prediction.txt
// are reproduced below). Each test names the upstream test it mirrors.
#include "core/eval/rouge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/eval/porter_stemmer.h"

namespace qlorad::eval {
namespace {

using ::testing::ElementsAre;

// rouge/testdata/target.txt and rouge/testdata/prediction.txt (lines 0 and 1).
const char* kTargets[] = {
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr "
    "q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer "
    "HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion "
    "gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n"};
const char* kPredictions[] = {
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed "
    "nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n"};

void ExpectScore(const RougeScore& s, double p, double r, double f, double eps = 1e-9) {
  EXPECT_NEAR(s.precision, p, eps);
  EXPECT_NEAR(s.recall, r, eps);
  EXPECT_NEAR(s.fmeasure, f, eps);
}

// tokenize_test.py: TokenizeTest.test_give_me_a_name
TEST(RougeTokenizeTest, GiveMeAName) {
  EXPECT_THAT(RougeTokenize("one Two three", false), ElementsAre("one", "two", "three"));
  EXPECT_THAT(RougeTokenize("one\n Two \nthree", false), ElementsAre("one", "two", "three"));
}

TEST(RougeTokenizeTest, NonAlphanumericRunsSeparateAndStemOnlyLongTokens) {
  EXPECT_THAT(RougeTokenize("Don't-stop  the  MUSIC!!", false), ElementsAre("don", "t", "stop", "the", "music"));
  // "runs" (4 chars) is stemmed, "ran"/"was" (3 chars) are not; digits are kept.
  EXPECT_THAT(RougeTokenize("Runs ran was 2024 flies", true), ElementsAre("run", "ran", "was", "2024", "fli"));
  EXPECT_THAT(RougeTokenize("caf\xC3\xA9 na\xC3\xAFve", false), ElementsAre("caf", "na", "ve"));
  // Python's str.lower() maps U+212A KELVIN SIGN to 'k' and U+0130 to "i" + U+0307.
  EXPECT_THAT(RougeTokenize("\xE2\x84\xAA" "elvin \xC4\xB0stanbul", false), ElementsAre("kelvin", "i", "stanbul"));
}

// rouge_scorer_test.py: testRougeLConsecutive
TEST(RougeLTest, Consecutive) { ExpectScore(RougeL("testing one two", "testing one"), 1, 2.0 / 3, 4.0 / 5); }

// rouge_scorer_test.py: testRougeLNonConsecutive
TEST(RougeLTest, NonConsecutive) { ExpectScore(RougeL("testing one two", "testing two"), 1, 2.0 / 3, 4.0 / 5); }

// rouge_scorer_test.py: testRougeEmpty (rougeL)
TEST(RougeLTest, Empty) { ExpectScore(RougeL("testing one two", ""), 0, 0, 0); }

// rouge_scorer_test.py: testRouge1 and testRouge2 (n-gram variants)
TEST(RougeNTest, Rouge1AndRouge2) {
  ExpectScore(RougeN("testing one two", "testing", 1), 1, 1.0 / 3, 1.0 / 2);
  ExpectScore(RougeN("testing one two", "testing one", 2), 1, 1.0 / 2, 2.0 / 3);
  ExpectScore(RougeN("testing one two", "", 1), 0, 0, 0);  // testRougeEmpty (rouge1)
}

// rouge_scorer_test.py: testLcsTable (LCS length part)
TEST(RougeLTest, LcsTable) {
  EXPECT_EQ(LcsLength({"1", "2", "3", "4", "5"}, {"2", "5", "3", "4"}), 3u);
  EXPECT_EQ(LcsLength({"1", "2", "3", "4", "5"}, {"8", "9"}), 0u);
}

// rouge_scorer_test.py: testRougeLAgainstRouge155 (values from ROUGE-1.5.5, 5 places)
TEST(RougeLTest, AgainstRouge155) {
  ExpectScore(RougeL(kTargets[0], kPredictions[0]), 0.68750, 0.40741, 0.51163, 5e-6);
  ExpectScore(RougeL(kTargets[1], kPredictions[1]), 0.65385, 0.40476, 0.50000, 5e-6);
}

// rouge_scorer_test.py: testRouge1AgainstRouge155 / testRouge1AgainstRouge155WithStemming
TEST(RougeNTest, Rouge1AgainstRouge155WithAndWithoutStemming) {
  ExpectScore(RougeN(kTargets[0], kPredictions[0], 1), 0.68750, 0.40741, 0.51163, 5e-6);
  ExpectScore(RougeN(kTargets[1], kPredictions[1], 1), 0.65385, 0.40476, 0.50000, 5e-6);
  // Stemming merges e.g. "...tion"/"...er"/"...ing" variants: line 1 changes.
  ExpectScore(RougeN(kTargets[0], kPredictions[0], 1, true), 0.68750, 0.40741, 0.51163, 5e-6);
  ExpectScore(RougeN(kTargets[1], kPredictions[1], 1, true), 0.69231, 0.42857, 0.52941, 5e-6);
}

// rouge_scorer_test.py: testRouge2AgainstRouge155 / testRouge2AgainstRouge155WithStemming
TEST(RougeNTest, Rouge2AgainstRouge155WithAndWithoutStemming) {
  for (bool stem : {false, true}) {
    ExpectScore(RougeN(kTargets[0], kPredictions[0], 2, stem), 0.53333, 0.30769, 0.39024, 5e-6);
    ExpectScore(RougeN(kTargets[1], kPredictions[1], 2, stem), 0.48000, 0.29268, 0.36364, 5e-6);
  }
}

TEST(RougeLTest, StemmingMatchesInflections) {
  // Without stemming only "the" and "cat" match; with it "running"/"runs" -> "run" too.
  const RougeScore plain = RougeL("the cat runs", "the cat running");
  const RougeScore stemmed = RougeL("the cat runs", "the cat running", true);
  EXPECT_NEAR(plain.fmeasure, 2.0 / 3, 1e-12);
  EXPECT_NEAR(stemmed.fmeasure, 1.0, 1e-12);
}

// NLTK PorterStemmer() (default NLTK_EXTENSIONS mode, NLTK 3.8) on the examples of
// Porter's paper quoted in nltk/stem/porter.py plus NLTK's irregular forms.
TEST(PorterStemmerTest, MatchesNltkDefaultMode) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"caresses", "caress"}, {"ponies", "poni"},       {"ties", "tie"},          {"caress", "caress"},
      {"cats", "cat"},        {"feed", "feed"},         {"agreed", "agre"},       {"plastered", "plaster"},
      {"bled", "bled"},       {"motoring", "motor"},    {"sing", "sing"},         {"conflated", "conflat"},
      {"troubled", "troubl"}, {"sized", "size"},        {"hopping", "hop"},       {"tanned", "tan"},
      {"falling", "fall"},    {"hissing", "hiss"},      {"fizzed", "fizz"},       {"failing", "fail"},
      {"filing", "file"},     {"happy", "happi"},       {"sky", "sky"},           {"relational", "relat"},
      {"conditional", "condit"}, {"rational", "ration"}, {"valenci", "valenc"},   {"digitizer", "digit"},
      {"conformabli", "conform"}, {"radicalli", "radic"}, {"differentli", "differ"}, {"vileli", "vile"},
      {"analogousli", "analog"}, {"vietnamization", "vietnam"}, {"predication", "predic"},
      {"operator", "oper"},   {"feudalism", "feudal"},  {"decisiveness", "decis"}, {"hopefulness", "hope"},
      {"callousness", "callous"}, {"formaliti", "formal"}, {"sensitiviti", "sensit"},
      {"sensibiliti", "sensibl"}, {"triplicate", "triplic"}, {"formative", "form"}, {"formalize", "formal"},
      {"electriciti", "electr"}, {"electrical", "electr"}, {"hopeful", "hope"},   {"goodness", "good"},
      {"revival", "reviv"},   {"allowance", "allow"},   {"inference", "infer"},   {"airliner", "airlin"},
      {"gyroscopic", "gyroscop"}, {"adjustable", "adjust"}, {"defensible", "defens"}, {"irritant", "irrit"},
      {"replacement", "replac"}, {"adjustment", "adjust"}, {"dependent", "depend"}, {"adoption", "adopt"},
      {"homologou", "homolog"}, {"communism", "commun"}, {"activate", "activ"},   {"angulariti", "angular"},
      {"homologous", "homolog"}, {"effective", "effect"}, {"bowdlerize", "bowdler"}, {"probate", "probat"},
      {"rate", "rate"},       {"cease", "ceas"},        {"controll", "control"},  {"roll", "roll"},
      {"skies", "sky"},       {"dying", "die"},         {"news", "news"},         {"flies", "fli"},
      {"generalization", "gener"}, {"running", "run"},  {"tion", "tion"},         {"is", "is"},
  };
  for (const auto& [word, stem] : cases) EXPECT_EQ(PorterStem(word), stem) << word;
}

}  // namespace
}  // namespace qlorad::eval
