#include "core/tokenizer/tokenizer.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/hf_tokenizer.h"
#include "core/tokenizer/sentencepiece_tokenizer.h"
#include "core/util/file_util.h"

namespace qlorad::tokenizer {

namespace fs = std::filesystem;

void Tokenizer::ResolveSpecialIds(const std::vector<std::string>& fallback_bos,
                                  const std::vector<std::string>& fallback_eos) {
  auto resolve = [this](const std::string& configured, const std::vector<std::string>& fallback,
                        std::optional<int32_t>* id, std::string* token) {
    if (!configured.empty()) {
      *id = TokenToId(configured);
      if (*id) *token = configured;
      return;
    }
    for (const std::string& name : fallback) {
      if (auto found = TokenToId(name)) {
        *id = found;
        *token = name;
        return;
      }
    }
  };
  resolve(config_.bos_token, fallback_bos, &bos_id_, &bos_token_);
  resolve(config_.eos_token, fallback_eos, &eos_id_, &eos_token_);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  fs::path config_path;
  fs::path file;
  if (fs::is_directory(p, ec)) {
    config_path = p / "tokenizer_config.json";
    if (fs::exists(p / "tokenizer.json", ec)) {
      file = p / "tokenizer.json";
    } else if (fs::exists(p / "tokenizer.model", ec)) {
      file = p / "tokenizer.model";
    } else {
      return absl::NotFoundError(absl::StrCat(path, ": directory has neither tokenizer.json nor tokenizer.model "
                                                    "(hint: point --tokenizer at the model directory or the file)"));
    }
  } else if (fs::exists(p, ec)) {
    file = p;
    config_path = p.parent_path() / "tokenizer_config.json";
  } else {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  }
  auto config = ReadTokenizerConfigIfExists(config_path.string());
  if (!config.ok()) return config.status();
  if (absl::EndsWith(file.string(), ".json")) {
    auto text = qlorad::ReadFileToString(file.string());
    if (!text.ok()) return text.status();
    auto tok = HfTokenizer::Create(*text, file.string(), std::move(*config));
    if (!tok.ok()) return tok.status();
    return std::unique_ptr<Tokenizer>(std::move(*tok));
  }
  auto tok = SentencePieceTokenizer::Create(file.string(), std::move(*config));
  if (!tok.ok()) return tok.status();
  return std::unique_ptr<Tokenizer>(std::move(*tok));
}

}  // namespace qlorad::tokenizer
