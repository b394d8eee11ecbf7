// The LoRA configuration: which modules get adapters and their rank, alpha and
// scaling. One config for both uses: training (Validate(): short projection names
// only) and adapters read from adapter_config.json, which may carry PEFT's other
// selection forms (a regex target_modules, layers_to_transform, exclude_modules).
// RankFor/AlphaFor/Targets follow PEFT's rules for both (peft_match.h). Torch-free.
#ifndef QLORAD_CORE_ADAPTER_LORA_CONFIG_H_
#define QLORAD_CORE_ADAPTER_LORA_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qlorad {

// The alpha a config gets when only r is given (twice the rank, as QLoRA's recipes use).
inline double DefaultLoraAlpha(int64_t r) { return 2.0 * static_cast<double>(r); }

struct LoraConfig {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0.05;
  bool use_rslora = false;  // scaling alpha / sqrt(r) instead of alpha / r
  // How the adapter starts (core/quant/lora_init.h): "kaiming" (PEFT's default: A kaiming
  // uniform, B = 0), "gaussian" (A ~ N(0, 1/r), B = 0), "loftq" (4-bit base only: the base
  // is re-quantized so that Q + scaling·BA ≈ W) or "pissa" (BA = the top-r singular part of
  // W, the base holds the residual). loftq and pissa change the base the adapter belongs to.
  std::string init = "kaiming";
  // DoRA (Liu et al. 2024; PEFT use_dora): y = m ⊙ (W + s·BA)x / ‖W + s·BA‖_row, with a
  // trained magnitude m per output row (PEFT's lora_magnitude_vector); see lora_linear.h.
  bool use_dora = false;
  int64_t loftq_iterations = 1;  // LoftQ's alternating quantize/SVD rounds (PEFT's loftq_iter)
  // Module names: a module is targeted if its name equals an entry or ends with "." + entry.
  // Default: every linear projection (the QLoRA paper's setting).
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  // PEFT's string form of target_modules: a Python regex fully matching the module name.
  // When non-empty it replaces target_modules. Loaded adapters only (Validate() refuses it).
  std::string target_modules_regex;
  // PEFT's layers_to_transform / layers_pattern: when non-empty, a module targeted through
  // a suffix of target_modules is kept only if its layer index (PeftLayerIndex) is listed.
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  // PEFT's exclude_modules: list form (equal or "." + entry suffix) or a regex (fullmatch).
  std::vector<std::string> exclude_modules;
  std::string exclude_modules_regex;
  // Per-module overrides (PEFT's rank_pattern/alpha_pattern). Keys are regexes matched as
  // re.match(rf"(.*\.)?({key})$", module): a short name, a dotted suffix, a full name or a regex.
  std::map<std::string, int64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  // The order the keys are tried in (first match wins, as PEFT iterates the JSON dict):
  // these first, then any key not listed, in map order. ReadPeftConfig fills them from the file.
  std::vector<std::string> rank_pattern_order;
  std::vector<std::string> alpha_pattern_order;

  // For training: INVALID_ARGUMENT "<field>: <reason>" (field as in the job spec: r, alpha,
  // dropout, target_modules) for what the trainer cannot use.
  absl::Status Validate() const;
  // The rank and alpha that apply to `module` ("model.layers.3.mlp.up_proj").
  int64_t RankFor(const std::string& module) const;
  double AlphaFor(const std::string& module) const;
  // alpha / r, or alpha / sqrt(r) with use_rslora, for `module`.
  double ScalingFor(const std::string& module) const;
  bool Targets(const std::string& module) const;
  // rank_pattern / alpha_pattern keys in the order they are tried (see *_pattern_order).
  std::vector<std::string> RankPatternKeys() const;
  std::vector<std::string> AlphaPatternKeys() const;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_ADAPTER_LORA_CONFIG_H_
