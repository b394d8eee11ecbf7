#include "core/train/training_options.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/quant/quantize_setting.h"
#include "core/util/path_name.h"
#include "core/util/status_macros.h"

namespace qlorad {
namespace {

constexpr char kTop[] = "";  // a key of the options object itself
constexpr char kLora[] = "lora";
constexpr char kTrainer[] = "trainer";

// The one list of JSON keys: visit(section, key, field) for every field, `section` being
// the object that holds the key (kTop, kLora or kTrainer). `Options` is TrainingOptions,
// const (writing JSON) or not (reading it).
template <typename Options, typename Visit>
void VisitFields(Options& o, Visit&& visit) {
  visit(kTop, "dataset_id", o.dataset_id);
  visit(kTop, "quantize", o.quantize);
  visit(kTop, "method", o.method);
  visit(kLora, "r", o.lora.r);
  visit(kLora, "alpha", o.lora.alpha);
  visit(kLora, "dropout", o.lora.dropout);
  visit(kLora, "use_rslora", o.lora.use_rslora);
  visit(kLora, "use_dora", o.lora.use_dora);
  visit(kLora, "init", o.lora.init);
  visit(kLora, "loftq_iterations", o.lora.loftq_iterations);
  visit(kLora, "target_modules", o.lora.target_modules);
  visit(kLora, "rank_pattern", o.lora.rank_pattern);
  visit(kLora, "alpha_pattern", o.lora.alpha_pattern);
  visit(kTrainer, "epochs", o.trainer.epochs);
  visit(kTrainer, "batch_size", o.trainer.batch_size);
  visit(kTrainer, "gradient_accumulation", o.trainer.gradient_accumulation);
  visit(kTrainer, "learning_rate", o.trainer.learning_rate);
  visit(kTrainer, "weight_decay", o.trainer.weight_decay);
  visit(kTrainer, "loraplus_lr_ratio", o.trainer.loraplus_lr_ratio);
  visit(kTrainer, "packing", o.trainer.packing);
  visit(kTrainer, "dpo_beta", o.trainer.dpo_beta);
  visit(kTrainer, "schedule", o.trainer.schedule);
  visit(kTrainer, "warmup_ratio", o.trainer.warmup_ratio);
  visit(kTrainer, "max_grad_norm", o.trainer.max_grad_norm);
  visit(kTrainer, "max_seq_len", o.trainer.max_seq_len);
  visit(kTrainer, "seed", o.trainer.seed);
  visit(kTrainer, "gradient_checkpointing", o.trainer.gradient_checkpointing);
  visit(kTrainer, "checkpoint_keep", o.trainer.checkpoint_keep);
  visit(kTrainer, "eval_fraction", o.trainer.eval_fraction);
  visit(kTrainer, "eval_every_steps", o.trainer.eval_every_steps);
  visit(kTrainer, "early_stopping_patience", o.trainer.early_stopping_patience);
  visit(kTrainer, "early_stopping_min_delta", o.trainer.early_stopping_min_delta);
}

// Reads json[section][key] into the field (absent, null, or a section that is not an
// object: unchanged); a wrong type is INVALID_ARGUMENT naming "section.key". After the
// first error later reads do nothing and `status` keeps it.
struct FieldReader {
  explicit FieldReader(const nlohmann::json& json) : json(json) {}

  template <typename T>
  void operator()(const char* section, const char* key, T& out) {
    const nlohmann::json* object = &json;
    if (*section != '\0') {
      auto it = json.find(section);
      object = it != json.end() ? &*it : nullptr;
    }
    if (!status.ok() || object == nullptr || !object->is_object()) return;
    auto it = object->find(key);
    if (it == object->end() || it->is_null()) return;
    try {
      out = it->get<T>();
    } catch (const nlohmann::json::exception&) {
      status = absl::InvalidArgumentError(
          absl::StrCat(section, *section != '\0' ? "." : "", key, ": wrong type (", it->dump(), ")"));
    }
  }

  const nlohmann::json& json;
  absl::Status status;
};

struct FieldWriter {
  template <typename T>
  void operator()(const char* section, const char* key, const T& value) {
    (*section != '\0' ? json[section] : json)[key] = value;
  }

  nlohmann::json json = nlohmann::json::object();
};

// `status` with `prefix` before its message (same code).
absl::Status Prefixed(const absl::Status& status, const char* prefix) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

absl::Status TrainingOptions::Validate() const {
  QLORAD_RETURN_IF_ERROR(ValidatePathName("dataset_id", dataset_id));  // datasets/<id> is read
  QLORAD_RETURN_IF_ERROR(ParseQuantizeSetting(quantize, "quantize").status());
  QLORAD_RETURN_IF_ERROR(Prefixed(lora.Validate(), "lora."));
  if (lora.init == "loftq" && quantize == "none")
    return absl::InvalidArgumentError(
        "lora.init: loftq fits the adapter to a 4-bit base's quantization error; set quantize nf4|fp4, "
        "or use init pissa on a full-precision base");
  if (method != "sft" && method != "dpo")
    return absl::InvalidArgumentError(absl::StrCat("method: '", method, "' is not sft or dpo"));
  if (method == "dpo" && (lora.init == "loftq" || lora.init == "pissa"))
    return absl::InvalidArgumentError(absl::StrCat(
        "lora.init: ", lora.init, " moves part of W into the adapter, so with method dpo the reference model (the base ",
        "with the adapter disabled) would be the residual, not the starting model (hint: kaiming or gaussian)"));
  if (method == "dpo" && trainer.packing)
    return absl::InvalidArgumentError("hyperparameters.packing: not supported with method dpo (hint: leave packing off)");
  return Prefixed(ValidateTrainerOptions(trainer), "hyperparameters.");
}

nlohmann::json TrainingOptionsToJson(const TrainingOptions& options) {
  FieldWriter writer;
  VisitFields(options, writer);
  return std::move(writer.json);
}

nlohmann::json LoraConfigToJson(const LoraConfig& config) {
  TrainingOptions options;
  options.lora = config;
  return TrainingOptionsToJson(options)[kLora];
}

nlohmann::json TrainerOptionsToJson(const TrainerOptions& trainer) {
  TrainingOptions options;
  options.trainer = trainer;
  return TrainingOptionsToJson(options)[kTrainer];
}

absl::StatusOr<TrainingOptions> TrainingOptionsFromJson(const nlohmann::json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("training options: not a JSON object");
  TrainingOptions options;
  options.lora.alpha = std::nan("");  // JSON has no NaN: still NaN after reading = alpha absent
  FieldReader reader(json);
  VisitFields(options, reader);
  QLORAD_RETURN_IF_ERROR(reader.status);
  if (std::isnan(options.lora.alpha)) options.lora.alpha = DefaultLoraAlpha(options.lora.r);
  QLORAD_RETURN_IF_ERROR(options.Validate());
  return options;
}

}  // namespace qlorad
