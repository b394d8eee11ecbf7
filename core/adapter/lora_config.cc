#include "core/adapter/lora_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/adapter/peft_match.h"

namespace qlorad {
namespace {

// Pattern keys in the order PEFT tries them: `order` first, then the rest in map order.
template <typename T>
std::vector<std::string> PatternKeys(const std::map<std::string, T>& pattern, const std::vector<std::string>& order) {
  std::vector<std::string> keys;
  for (const std::string& key : order)
    if (pattern.count(key) != 0 && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  for (const auto& [key, value] : pattern)
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  return keys;
}

template <typename T>
const T* PatternValue(const std::map<std::string, T>& pattern, const std::vector<std::string>& order,
                      const std::string& module) {
  if (pattern.empty()) return nullptr;
  const std::vector<std::string> keys = PatternKeys(pattern, order);
  const std::string* key = PeftPatternKey(keys, module);
  return key ? &pattern.at(*key) : nullptr;
}

}  // namespace

absl::Status LoraConfig::Validate() const {
  if (!target_modules_regex.empty() || !exclude_modules.empty() || !exclude_modules_regex.empty())
    return absl::InvalidArgumentError(
        "target_modules: training takes a list of projection names (a regex or exclude_modules only in loaded adapters)");
  if (r <= 0) return absl::InvalidArgumentError(absl::StrCat("r: must be positive, got ", r));
  if (!(alpha > 0)) return absl::InvalidArgumentError(absl::StrCat("alpha: must be positive, got ", alpha));
  if (!(dropout >= 0 && dropout < 1)) return absl::InvalidArgumentError("dropout: must be in [0, 1)");
  if (target_modules.empty()) return absl::InvalidArgumentError("target_modules: is empty");
  if (init != "kaiming" && init != "gaussian" && init != "loftq" && init != "pissa")
    return absl::InvalidArgumentError(absl::StrCat("init: '", init, "' is not one of kaiming, gaussian, loftq, pissa"));
  if (loftq_iterations < 1 || loftq_iterations > 64)
    return absl::InvalidArgumentError(absl::StrCat("loftq_iterations: must be in [1, 64], got ", loftq_iterations));
  for (const std::string& name : target_modules)
    if (name != "q_proj" && name != "k_proj" && name != "v_proj" && name != "o_proj" && name != "gate_proj" &&
        name != "up_proj" && name != "down_proj")
      return absl::InvalidArgumentError(absl::StrCat("target_modules: '", name,
                                                     "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"));
  return absl::OkStatus();
}

int64_t LoraConfig::RankFor(const std::string& module) const {
  const int64_t* value = PatternValue(rank_pattern, rank_pattern_order, module);
  return value ? *value : r;
}

double LoraConfig::AlphaFor(const std::string& module) const {
  const double* value = PatternValue(alpha_pattern, alpha_pattern_order, module);
  return value ? *value : alpha;
}

double LoraConfig::ScalingFor(const std::string& module) const {
  const double rank = static_cast<double>(RankFor(module));
  return AlphaFor(module) / (use_rslora ? std::sqrt(rank) : rank);
}

bool LoraConfig::Targets(const std::string& module) const {
  return PeftTargets({target_modules, target_modules_regex, layers_to_transform, layers_pattern, exclude_modules,
                      exclude_modules_regex},
                     module);
}

std::vector<std::string> LoraConfig::RankPatternKeys() const { return PatternKeys(rank_pattern, rank_pattern_order); }
std::vector<std::string> LoraConfig::AlphaPatternKeys() const { return PatternKeys(alpha_pattern, alpha_pattern_order); }

}  // namespace qlorad
