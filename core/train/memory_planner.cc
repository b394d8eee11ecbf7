#include "core/train/memory_planner.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "core/model/loader.h"
#include "core/model/random_model.h"  // MakeConfig for the presets
#include "core/util/checkpoint_base.h"

namespace qlorad {
namespace {

// Calibrated coefficients (see the header and RESULTS.md "Memory planner").
constexpr double kActivationH = 13;   // hidden-sized tensors kept per token and layer
constexpr double kActivationI = 4;    // intermediate-sized tensors kept per token and layer
constexpr double kActivationKv = 3;   // key/value-sized tensors kept per token and layer
constexpr double kAttentionMaps = 2;  // fp32 scores and probabilities per head kept per token and layer
constexpr double kSlack = 0.08;       // allocator fragmentation and temporaries
constexpr int64_t kCpuRuntimeBytes = 190ll << 20;   // libtorch + OpenBLAS + arenas: RSS before loading, measured
constexpr int64_t kCudaRuntimeBytes = 600ll << 20;  // CUDA context and kernels
constexpr double kQuantConstantBytes = 1.0 / 64 + 4.0 / (64 * 256);

int64_t GiB(double gb) { return static_cast<int64_t>(gb * (1ll << 30)); }

}  // namespace

absl::StatusOr<ModelConfig> PresetModelConfig(const std::string& name) {
  ModelConfig c;
  if (name == "1B") c = MakeConfig("llama", 16, 2048, 32, 8, 8192, 128256, true);
  else if (name == "3B") c = MakeConfig("llama", 28, 3072, 24, 8, 8192, 128256, true);
  else if (name == "7B") c = MakeConfig("llama", 32, 4096, 32, 32, 11008, 32000, false);
  else if (name == "8B") c = MakeConfig("llama", 32, 4096, 32, 8, 14336, 128256, false);
  else if (name == "13B") c = MakeConfig("llama", 40, 5120, 40, 40, 13824, 32000, false);
  else if (name == "70B") c = MakeConfig("llama", 80, 8192, 64, 8, 28672, 32000, false);
  else
    return absl::InvalidArgumentError(absl::StrCat("preset '", name, "' is not one of 1B, 3B, 7B, 8B, 13B, 70B"));
  return c;
}

absl::StatusOr<MemoryPlan> PlanMemory(const PlanInput& in) {
  const ModelConfig& c = in.config;
  if (c.num_hidden_layers <= 0 || c.hidden_size <= 0 || c.head_dim <= 0)
    return absl::InvalidArgumentError("config: layers, hidden_size and head_dim must be positive");
  if (in.method != "full" && in.method != "lora" && in.method != "qlora")
    return absl::InvalidArgumentError(absl::StrCat("method '", in.method, "' is not full, lora or qlora"));
  if (in.optimizer != "adamw" && in.optimizer != "adamw8bit" && in.optimizer != "sgd")
    return absl::InvalidArgumentError(absl::StrCat("optimizer '", in.optimizer, "' is not adamw, adamw8bit or sgd"));
  if (in.device != "cuda" && in.device != "cpu") return absl::InvalidArgumentError("device must be cuda or cpu");
  if (in.batch <= 0 || in.seq_len <= 0) return absl::InvalidArgumentError("batch and seq_len must be positive");
  if (absl::Status keep = CheckCheckpointKeep(in.checkpoint_keep); !keep.ok()) return keep;
  const double e = in.device == "cuda" ? 2 : 4;
  const double tokens = static_cast<double>((in.dpo ? 2 : 1) * in.batch * in.seq_len);
  const int64_t layers = c.num_hidden_layers, h = c.hidden_size, kv = c.num_key_value_heads * c.head_dim;
  double linear_params = 0, lora_params = 0, lora_activation = 0, kept_outputs = 0;
  for (int64_t layer = 0; layer < layers; ++layer)
    for (const std::string& module : LayerLinearModules(layer)) {
      const auto [out, in_features] = LinearModuleShape(c, module);
      linear_params += static_cast<double>(out) * in_features;
      if (in.method == "full" || !in.lora.Targets(module)) continue;
      const int64_t r = in.lora.RankFor(module);
      lora_params += static_cast<double>(r) * (in_features + out);
      lora_activation += tokens * (2.0 * in_features + r) * 4;
      if (in.lora.use_dora) {  // magnitude [out]; kept: the base term, the scaled update, their sum
        lora_params += out;
        lora_activation += tokens * 3.0 * out * 4;
      }
      if (in.gradient_checkpointing && KeepsBaseOutput(CheckpointBaseFor(in.checkpoint_keep, module), in.lora.use_dora))
        kept_outputs += tokens * out * e * (in.lora.use_dora && in.lora.dropout > 0 ? 2 : 1);  // DoRA: base(dropout(x)) too
    }
  const double embed_params = static_cast<double>(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2);
  const double norm_params = static_cast<double>(2 * layers + 1) * h;
  const bool full = in.method == "full";
  const double trainable = full ? linear_params + embed_params + norm_params : lora_params;
  const double optimizer_per_param = in.optimizer == "adamw" ? 8 : in.optimizer == "adamw8bit" ? 2 : 0;

  MemoryPlan plan;
  plan.trainable_params = static_cast<int64_t>(trainable);
  auto add = [&](const char* name, double bytes) { plan.breakdown.emplace_back(name, static_cast<int64_t>(bytes)); };
  add("base weights", (in.method == "qlora" ? 0.5 * linear_params : e * linear_params) + e * (embed_params + norm_params));
  add("quantization constants", in.method == "qlora" ? kQuantConstantBytes * linear_params : 0);
  add("adapters", full ? 0 : 4 * lora_params);
  add("gradients", full ? e * trainable : 4 * trainable);
  add("optimizer state", optimizer_per_param * trainable + (full ? 4 * trainable : 0));
  const double per_layer = tokens * (kActivationH * h + kActivationI * c.intermediate_size + kActivationKv * kv) * e +
                           kAttentionMaps * tokens * c.num_attention_heads * in.seq_len * 4;
  const double lora_per_layer = lora_activation / layers;
  add("activations", in.gradient_checkpointing ? layers * tokens * h * e + kept_outputs + per_layer + lora_per_layer
                                               : layers * per_layer + lora_activation);
  add("loss workspace", in.loss_token_fraction * tokens * c.vocab_size * 4 * 3);
  double sum = 0;
  for (const auto& [name, bytes] : plan.breakdown) sum += bytes;
  add("allocator slack", kSlack * sum);
  add("runtime", in.device == "cuda" ? kCudaRuntimeBytes : kCpuRuntimeBytes);
  for (const auto& [name, bytes] : plan.breakdown) plan.total_bytes += bytes;
  if (in.tokens_per_second > 0 && in.train_tokens > 0) plan.hours = in.train_tokens / in.tokens_per_second / 3600.0;
  for (double gb : {24.0, 40.0, 48.0, 80.0, 141.0})
    plan.gpus.emplace_back(absl::StrCat(static_cast<int>(gb), " GB"), plan.total_bytes <= GiB(gb) * 0.95);
  return plan;
}

std::string FormatPlan(const PlanInput& in, const MemoryPlan& plan) {
  std::string out = absl::StrCat(in.method, in.dpo ? " (DPO: 2 rows per pair)" : "", " on ", in.device, ", batch ",
                                 in.batch, " x seq ", in.seq_len,
                                 in.gradient_checkpointing ? ", gradient checkpointing" : "", ", ", in.optimizer, "; ",
                                 plan.trainable_params, " trainable parameters\n");
  char line[128];
  for (const auto& [name, bytes] : plan.breakdown) {
    std::snprintf(line, sizeof(line), "  %-24s %10.2f GiB\n", name.c_str(), bytes / double(1ll << 30));
    out += line;
  }
  std::snprintf(line, sizeof(line), "  %-24s %10.2f GiB\n", "total (peak)", plan.total_bytes / double(1ll << 30));
  out += line;
  if (plan.hours > 0) absl::StrAppend(&out, "  time: ", plan.hours, " h at the measured tokens/s\n");
  absl::StrAppend(&out, "  fits on:");
  for (const auto& [gpu, fits] : plan.gpus) absl::StrAppend(&out, " ", gpu, fits ? " yes" : " no", ";");
  out += "\n";
  return out;
}

}  // namespace qlorad
