#include "core/tokenizer/tokenizer_config.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"

namespace qlorad::tokenizer {
namespace {

// A token field is a string or an AddedToken object {"content": ...}.
absl::StatusOr<std::string> TokenField(const nlohmann::json& json, const char* key, const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return std::string();
  const auto& v = json[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return absl::InvalidArgumentError(absl::StrCat(source, ": field '", key, "' must be a string or {\"content\": ...}"));
}

}  // namespace

absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(const std::string& json_text, const std::string& source) {
  nlohmann::json json = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  TokenizerConfig config;
  auto bos = TokenField(json, "bos_token", source);
  if (!bos.ok()) return bos.status();
  config.bos_token = *bos;
  auto eos = TokenField(json, "eos_token", source);
  if (!eos.ok()) return eos.status();
  config.eos_token = *eos;
  for (auto [key, field] : {std::pair{"add_bos_token", &config.add_bos_token}, std::pair{"add_eos_token", &config.add_eos_token}}) {
    if (!json.contains(key) || json[key].is_null()) continue;
    if (!json[key].is_boolean()) return absl::InvalidArgumentError(absl::StrCat(source, ": field '", key, "' must be a boolean"));
    *field = json[key].get<bool>();
  }
  if (json.contains("chat_template")) {
    const auto& t = json["chat_template"];
    if (t.is_string()) {
      config.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const auto& entry : t) {
        if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") && entry["template"].is_string()) {
          config.chat_template = entry["template"].get<std::string>();
        }
      }
    }
  }
  if (json.contains("tokenizer_class") && json["tokenizer_class"].is_string()) {
    config.tokenizer_class = json["tokenizer_class"].get<std::string>();
  }
  return config;
}

absl::StatusOr<TokenizerConfig> ReadTokenizerConfigIfExists(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return TokenizerConfig();
  auto read = qlorad::ReadFileToString(path);
  if (!read.ok()) return read.status();
  return ParseTokenizerConfig(*read, path);
}

}  // namespace qlorad::tokenizer
