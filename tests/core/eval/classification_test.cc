// classification_report / confusion_matrix against hand-computed numbers (the
// arithmetic is in the comments) for a multi-class case with a class that is never
// predicted ("bird") and a predicted class absent from the truth ("fish").
// tests/reference/eval_reference.py recomputes the same and random cases in Python.
#include "core/eval/classification.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace qlorad::eval {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// i:     0    1    2    3    4    5     6    7     8     9
// true:  cat  cat  cat  dog  dog  dog   dog  bird  bird  cat
// pred:  cat  dog  cat  dog  dog  fish  cat  cat   dog   cat
const std::vector<std::string> kTruth = {"cat", "cat", "cat", "dog", "dog", "dog", "dog", "bird", "bird", "cat"};
const std::vector<std::string> kPred = {"cat", "dog", "cat", "dog", "dog", "fish", "cat", "cat", "dog", "cat"};

TEST(ClassificationReportTest, HandComputedMultiClassWithUnpredictedAndUnseenClasses) {
  ASSERT_OK_AND_ASSIGN(ClassificationReport r, ComputeClassificationReport(kTruth, kPred));
  // Labels: sorted union of truth and predictions.
  EXPECT_THAT(r.labels, ElementsAre("bird", "cat", "dog", "fish"));
  ASSERT_EQ(r.per_class.size(), 4u);
  const double kEps = 1e-12;
  // bird: tp=0, predicted 0 times -> precision 0/0 := 0 (ill-defined); recall 0/2 = 0;
  //       F1 = 2*0/(0+0+2) = 0; support 2.
  EXPECT_NEAR(r.per_class[0].precision, 0.0, kEps);
  EXPECT_NEAR(r.per_class[0].recall, 0.0, kEps);
  EXPECT_NEAR(r.per_class[0].f1, 0.0, kEps);
  EXPECT_EQ(r.per_class[0].support, 2);
  // cat: tp=3 (i0,i2,i9), predicted 5 (i0,i2,i6,i7,i9), true 4 -> P=3/5, R=3/4,
  //      F1 = 6/(6+2+1) = 2/3.
  EXPECT_NEAR(r.per_class[1].precision, 0.6, kEps);
  EXPECT_NEAR(r.per_class[1].recall, 0.75, kEps);
  EXPECT_NEAR(r.per_class[1].f1, 2.0 / 3.0, kEps);
  EXPECT_EQ(r.per_class[1].support, 4);
  // dog: tp=2 (i3,i4), predicted 4 (i1,i3,i4,i8), true 4 -> P=R=F1=0.5.
  EXPECT_NEAR(r.per_class[2].precision, 0.5, kEps);
  EXPECT_NEAR(r.per_class[2].recall, 0.5, kEps);
  EXPECT_NEAR(r.per_class[2].f1, 0.5, kEps);
  EXPECT_EQ(r.per_class[2].support, 4);
  // fish: tp=0, predicted once (i5), never true -> P=0/1=0, R=0/0 := 0 (ill-defined),
  //       F1 = 0/(0+1+0) = 0; support 0.
  EXPECT_NEAR(r.per_class[3].precision, 0.0, kEps);
  EXPECT_NEAR(r.per_class[3].recall, 0.0, kEps);
  EXPECT_NEAR(r.per_class[3].f1, 0.0, kEps);
  EXPECT_EQ(r.per_class[3].support, 0);
  // accuracy = 5 correct (i0,i2,i3,i4,i9) / 10.
  EXPECT_TRUE(r.accuracy_row);
  EXPECT_NEAR(r.accuracy, 0.5, kEps);
  // macro: P=(0+.6+.5+0)/4=.275, R=(0+.75+.5+0)/4=.3125, F1=(0+2/3+.5+0)/4=7/24.
  EXPECT_NEAR(r.macro_avg.precision, 0.275, kEps);
  EXPECT_NEAR(r.macro_avg.recall, 0.3125, kEps);
  EXPECT_NEAR(r.macro_avg.f1, 7.0 / 24.0, kEps);
  EXPECT_EQ(r.macro_avg.support, 10);
  // weighted by support (2,4,4,0)/10: P=(.6*4+.5*4)/10=.44, R=(3+2)/10=.5,
  //       F1=(2/3*4+.5*4)/10=14/30.
  EXPECT_NEAR(r.weighted_avg.precision, 0.44, kEps);
  EXPECT_NEAR(r.weighted_avg.recall, 0.5, kEps);
  EXPECT_NEAR(r.weighted_avg.f1, 14.0 / 30.0, kEps);
  EXPECT_EQ(r.weighted_avg.support, 10);
  // C[true][pred] over (bird, cat, dog, fish).
  EXPECT_THAT(r.confusion, ElementsAre(ElementsAre(0, 1, 1, 0),    // bird -> cat (i7), dog (i8)
                                       ElementsAre(0, 3, 1, 0),    // cat -> cat x3, dog (i1)
                                       ElementsAre(0, 1, 2, 1),    // dog -> cat (i6), dog x2, fish (i5)
                                       ElementsAre(0, 0, 0, 0)));  // fish never true
  // sklearn's UndefinedMetricWarning semantics.
  EXPECT_THAT(r.ill_defined_precision, ElementsAre("bird"));
  EXPECT_THAT(r.ill_defined_recall, ElementsAre("fish"));
  EXPECT_TRUE(r.ill_defined_f1.empty());
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_THAT(r.warnings[0], HasSubstr("Precision is ill-defined and being set to 0.0 in labels with no predicted"));
  EXPECT_THAT(r.warnings[1], HasSubstr("Recall is ill-defined and being set to 0.0 in labels with no true samples"));
}

TEST(ClassificationReportTest, ExplicitLabelSubsetShowsMicroAverage) {
  ASSERT_OK_AND_ASSIGN(ClassificationReport r, ComputeClassificationReport(kTruth, kPred, {"dog", "cat"}));
  EXPECT_THAT(r.labels, ElementsAre("dog", "cat"));  // caller's order kept
  EXPECT_FALSE(r.accuracy_row);                      // bird/fish present but not listed
  // micro over {dog, cat}: tp = 2+3 = 5, predicted = 4+5 = 9, true = 4+4 = 8
  // -> P = 5/9, R = 5/8, F1 = 2*5/(9+8) = 10/17.
  EXPECT_NEAR(r.micro_avg.precision, 5.0 / 9.0, 1e-12);
  EXPECT_NEAR(r.micro_avg.recall, 5.0 / 8.0, 1e-12);
  EXPECT_NEAR(r.micro_avg.f1, 10.0 / 17.0, 1e-12);
  EXPECT_EQ(r.micro_avg.support, 8);
  // macro over the two listed labels only: F1 = (0.5 + 2/3)/2.
  EXPECT_NEAR(r.macro_avg.f1, (0.5 + 2.0 / 3.0) / 2, 1e-12);
  EXPECT_THAT(r.confusion, ElementsAre(ElementsAre(2, 1), ElementsAre(1, 3)));
}

TEST(ClassificationReportTest, LabelListedButAbsentEverywhereIsIllDefinedF1) {
  ASSERT_OK_AND_ASSIGN(ClassificationReport r, ComputeClassificationReport({"a", "b"}, {"a", "b"}, {"a", "b", "z"}));
  EXPECT_THAT(r.ill_defined_f1, ElementsAre("z"));
  EXPECT_NEAR(r.macro_avg.f1, 2.0 / 3.0, 1e-12);  // (1 + 1 + 0) / 3
  EXPECT_NEAR(r.weighted_avg.f1, 1.0, 1e-12);
}

TEST(ClassificationReportTest, RejectsBadInput) {
  EXPECT_THAT(ComputeClassificationReport({"a"}, {"a", "b"}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("predicted has 2")));
  EXPECT_THAT(ComputeClassificationReport({}, {}), testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no samples")));
  EXPECT_THAT(ComputeClassificationReport({"a"}, {"a"}, {"a", "a"}),
              testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
}

TEST(ClassificationReportTest, JsonRoundTripAndTextLayout) {
  ASSERT_OK_AND_ASSIGN(ClassificationReport r, ComputeClassificationReport(kTruth, kPred));
  ASSERT_OK_AND_ASSIGN(ClassificationReport back, ClassificationReportFromJson(ClassificationReportToJson(r)));
  EXPECT_EQ(back.labels, r.labels);
  EXPECT_EQ(back.confusion, r.confusion);
  EXPECT_DOUBLE_EQ(back.macro_avg.f1, r.macro_avg.f1);
  const std::string text = FormatClassificationReport(r);
  EXPECT_THAT(text, HasSubstr("precision    recall  f1-score   support"));
  EXPECT_THAT(text, HasSubstr("accuracy"));
  EXPECT_THAT(text, HasSubstr("0.67"));  // cat F1 with digits=2
}

}  // namespace
}  // namespace qlorad::eval
