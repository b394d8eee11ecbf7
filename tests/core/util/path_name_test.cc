// core/util/path_name.h: the one rule for caller-chosen names that become paths.
#include "core/util/path_name.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/testing/status_matchers.h"

namespace qlorad {
namespace {

namespace fs = std::filesystem;
using ::qlorad::testing::IsOk;
using ::qlorad::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ValidatePathName, AcceptsOrdinaryIds) {
  for (const char* ok : {"sentiment", "Sentiment_v2", "job-20240101120000-abcd", "a", "adapter_model.safetensors",
                         "README.md", "eval-1.2-3", "9lives"})
    EXPECT_THAT(ValidatePathName("dataset_id", ok), IsOk()) << ok;
}

TEST(ValidatePathName, RefusesTraversalSeparatorsNulAndEmptyNamingTheField) {
  struct Case {
    std::string value;
    const char* words;
  };
  const Case cases[] = {
      {"", "must not be empty"},
      {".", "must start with"},
      {"..", "'..'"},
      {"../etc", "'/'"},
      {"a/../../b", "'/'"},
      {"/etc/passwd", "'/'"},
      {"a\\..\\b", "'\\'"},
      {"..\\b", "'\\'"},
      {std::string("ok\0.json", 8), "NUL"},
      {"a..b", "'..'"},
      {".hidden", "must start with"},
      {"-rf", "must start with"},
      {"with space", "offset 4"},
      {"new\nline", "offset 3"},
      {"caf\xc3\xa9", "offset 3"},
      {"semi;colon", "offset 4"},
      {std::string(129, 'a'), "129 bytes long, more than 128"},
  };
  for (const Case& c : cases) {
    absl::Status s = ValidatePathName("header.files[1].name", c.value);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(StartsWith("header.files[1].name: "), HasSubstr(c.words), HasSubstr("hint: use"))))
        << "value '" << c.value << "'";
  }
}

TEST(ValidatePathName, MessagesEscapeControlBytes) {
  absl::Status s = ValidatePathName("job_id", std::string("x\0y", 3));
  EXPECT_EQ(std::string(s.message()).find('\0'), std::string::npos);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x\\x00y")));
}

TEST(ValidatePathName, RulesLimitLengthAndCase) {
  const PathNameRules adapter{64, true};
  EXPECT_THAT(ValidatePathName("adapter_name", "sentiment", adapter), IsOk());
  EXPECT_THAT(ValidatePathName("adapter_name", "Sentiment", adapter),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lowercase letter or digit")));
  EXPECT_THAT(ValidatePathName("adapter_name", "sEntiment", adapter),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'E' at offset 1")));
  EXPECT_THAT(ValidatePathName("adapter_name", std::string(64, 'a'), adapter), IsOk());
  EXPECT_THAT(ValidatePathName("adapter_name", std::string(65, 'a'), adapter),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[a-z0-9][a-z0-9._-]{0,63}")));
}

TEST(IsPathInside, ComparesWholeComponents) {
  EXPECT_TRUE(IsPathInside("/state/datasets/x", "/state"));
  EXPECT_TRUE(IsPathInside("/state/datasets/x", "/state/"));
  EXPECT_TRUE(IsPathInside("/state", "/state"));
  EXPECT_FALSE(IsPathInside("/statefoo/x", "/state"));
  EXPECT_FALSE(IsPathInside("/state/../etc", "/state"));
  EXPECT_FALSE(IsPathInside("/", "/state"));
}

class PathInsideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("qlorad-path-name-" + std::to_string(::getpid()));
    fs::remove_all(base_);
    fs::create_directories(base_ / "state" / "datasets");
    fs::create_directories(base_ / "outside");
  }
  void TearDown() override { fs::remove_all(base_); }
  std::string root() const { return (base_ / "state" / "datasets").string(); }
  fs::path base_;
};

TEST_F(PathInsideTest, JoinsAValidName) {
  absl::StatusOr<std::string> p = PathInside(root(), "dataset_id", "sentiment");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(*p, root() + "/sentiment");
  EXPECT_FALSE(fs::exists(*p));  // creates nothing
}

TEST_F(PathInsideTest, RefusesABadNameBeforeTouchingTheDisk) {
  EXPECT_THAT(PathInside(root(), "dataset_id", "../../outside"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("dataset_id: ")));
  EXPECT_TRUE(fs::is_empty(base_ / "outside"));
}

TEST_F(PathInsideTest, RefusesASymlinkThatLeavesTheRoot) {
  fs::create_directory_symlink(base_ / "outside", base_ / "state" / "datasets" / "escape");
  EXPECT_THAT(PathInside(root(), "dataset_id", "escape"),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(StartsWith("dataset_id: "), HasSubstr("outside"))));
  // A symlink that stays inside is fine.
  fs::create_directory(base_ / "state" / "datasets" / "real");
  fs::create_directory_symlink(base_ / "state" / "datasets" / "real", base_ / "state" / "datasets" / "alias");
  EXPECT_THAT(PathInside(root(), "dataset_id", "alias"), IsOk());
}

TEST_F(PathInsideTest, WorksWhenTheRootItselfIsReachedThroughASymlink) {
  fs::create_directory_symlink(base_ / "state", base_ / "state-link");
  EXPECT_THAT(PathInside((base_ / "state-link" / "datasets").string(), "dataset_id", "x"), IsOk());
}

}  // namespace
}  // namespace qlorad
