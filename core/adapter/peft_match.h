// PEFT's module-name matching rules, as PEFT applies them when it builds a LoRA
// model from adapter_config.json (peft/tuners/tuners_utils.py
// check_target_module_exists, peft/utils/other.py get_pattern_key). Module names
// are the base model's own ("model.layers.3.mlp.up_proj"). Patterns are Python
// regular expressions; PCRE2 runs them (the syntax PEFT configs use is common to
// both). Torch-free.
#ifndef QLORAD_CORE_ADAPTER_PEFT_MATCH_H_
#define QLORAD_CORE_ADAPTER_PEFT_MATCH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qlorad {

// OK if `pattern` compiles; else INVALID_ARGUMENT naming `field`, the offset and PCRE2's reason.
absl::Status CheckPeftRegex(const std::string& field, const std::string& pattern);

// Python's re.fullmatch(pattern, text) is not None. A pattern that does not compile never matches.
bool RegexFullMatch(const std::string& pattern, const std::string& text);

// get_pattern_key: the first of `keys` (in the order given) for which
// re.match(rf"(.*\.)?({key})$", module) matches, or nullptr when none does. So a
// key may be a short name ("q_proj"), a dotted suffix ("layers.1.self_attn.q_proj"),
// a full name or a regex ("model\.layers\.[0-3]\..*").
const std::string* PeftPatternKey(const std::vector<std::string>& keys, const std::string& module);

// The layer index PEFT reads from `module` for layers_to_transform: with no
// layers_pattern the first numbered segment (re.match(r".*?\.[^.]*\.(\d+)\.")), else
// the number after the first of `layers_pattern` that matches
// (re.match(rf".*?\.{pattern}\.(\d+)\.")). nullopt when there is none.
std::optional<int64_t> PeftLayerIndex(const std::string& module, const std::vector<std::string>& layers_pattern);

// What PEFT's target selection needs from a config (all as in adapter_config.json).
struct PeftTargetRules {
  const std::vector<std::string>& target_modules;  // list form: equal, or ends with "." + entry
  const std::string& target_modules_regex;         // string form: re.fullmatch; wins when non-empty
  const std::vector<int64_t>& layers_to_transform; // empty: every layer (list form only)
  const std::vector<std::string>& layers_pattern;
  const std::vector<std::string>& exclude_modules;  // list form: equal, or ends with "." + entry
  const std::string& exclude_modules_regex;         // string form: re.fullmatch
};

// check_target_module_exists for one module.
bool PeftTargets(const PeftTargetRules& rules, const std::string& module);

}  // namespace qlorad

#endif  // QLORAD_CORE_ADAPTER_PEFT_MATCH_H_
