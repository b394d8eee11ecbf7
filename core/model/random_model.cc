#include "core/model/random_model.h"

#include <cstring>
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "core/model/safetensors_writer.h"
#include "core/model/tensor_io.h"
#include "core/util/file_util.h"
#include "core/util/sha256.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace qlorad {
namespace fs = std::filesystem;
namespace {

enum class Init { kLinear, kEmbedding, kNorm, kBias };

struct RandomTensor {
  TensorSpec spec;
  Init init;
};

std::vector<RandomTensor> Layout(const ModelConfig& c, DType dtype) {
  std::vector<RandomTensor> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, Init init) {
    out.push_back({{std::move(name), dtype, std::move(shape)}, init});
  };
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim, h = c.hidden_size;
  add("model.embed_tokens.weight", {c.vocab_size, h}, Init::kEmbedding);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    std::string p = absl::StrCat("model.layers.", i, ".");
    add(p + "input_layernorm.weight", {h}, Init::kNorm);
    for (auto [name, rows] : {std::pair<const char*, int64_t>{"q_proj", q}, {"k_proj", kv}, {"v_proj", kv}}) {
      add(p + "self_attn." + name + ".weight", {rows, h}, Init::kLinear);
      if (c.attention_bias) add(p + "self_attn." + name + ".bias", {rows}, Init::kBias);
    }
    add(p + "self_attn.o_proj.weight", {h, q}, Init::kLinear);
    if (c.o_proj_bias) add(p + "self_attn.o_proj.bias", {h}, Init::kBias);
    add(p + "post_attention_layernorm.weight", {h}, Init::kNorm);
    add(p + "mlp.gate_proj.weight", {c.intermediate_size, h}, Init::kLinear);
    add(p + "mlp.up_proj.weight", {c.intermediate_size, h}, Init::kLinear);
    add(p + "mlp.down_proj.weight", {h, c.intermediate_size}, Init::kLinear);
  }
  add("model.norm.weight", {h}, Init::kNorm);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h}, Init::kLinear);
  return out;
}

at::Tensor Sample(const RandomTensor& t, uint64_t seed) {
  uint64_t name_hash = std::stoull(Sha256Hex(t.spec.name).substr(0, 15), nullptr, 16);  // stable everywhere
  auto generator = at::detail::createCPUGenerator(seed * 1000003u ^ name_hash);
  at::Tensor x = at::randn(t.spec.shape, generator, at::TensorOptions().dtype(at::kFloat));
  switch (t.init) {
    // Embeddings at 1/sqrt(hidden) too: with N(0, 1) rows a tied lm_head sees the
    // residual stream dominated by the last input embedding and repeats that token.
    case Init::kLinear:
    case Init::kEmbedding: return x / std::sqrt(static_cast<double>(t.spec.shape.back()));
    case Init::kNorm: return 1 + 0.1 * x;
    case Init::kBias: return 0.1 * x;
  }
  return x;
}

absl::Status CopyTokenizer(const std::string& source, const std::string& dir, int64_t vocab) {
  std::vector<fs::path> files;
  if (fs::is_directory(source)) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"})
      if (fs::exists(fs::path(source) / name)) files.push_back(fs::path(source) / name);
  } else if (fs::exists(source)) {
    files.push_back(source);
    fs::path config = fs::path(source).parent_path() / "tokenizer_config.json";
    if (fs::exists(config)) files.push_back(config);
  }
  if (files.empty()) return absl::NotFoundError(absl::StrCat("--tokenizer '", source, "': no tokenizer files found"));
  for (const fs::path& file : files) {
    QLORAD_ASSIGN_OR_RETURN(std::string text, ReadFileToString(file.string()));
    if (file.filename() == "tokenizer.json") {
      nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
      int64_t max_id = -1;
      if (json.is_object() && json.contains("model") && json["model"].contains("vocab"))
        for (const auto& [piece, id] : json["model"]["vocab"].items()) max_id = std::max<int64_t>(max_id, id.get<int64_t>());
      if (json.is_object() && json.contains("added_tokens"))
        for (const auto& added : json["added_tokens"]) max_id = std::max<int64_t>(max_id, added.value("id", int64_t{-1}));
      if (max_id >= vocab)
        return absl::InvalidArgumentError(absl::StrCat("--vocab ", vocab, " is smaller than the tokenizer's ", max_id + 1,
                                                       " ids (hint: pass --vocab ", max_id + 1, " or more)"));
    }
    QLORAD_RETURN_IF_ERROR(WriteFileAtomically((fs::path(dir) / file.filename()).string(), text));
  }
  return absl::OkStatus();
}

}  // namespace

ModelConfig MakeConfig(const std::string& model_type, int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads,
                       int64_t intermediate, int64_t vocab, bool tie_embeddings) {
  ModelConfig c;
  c.model_type = model_type;
  c.architecture = model_type == "qwen2" ? "Qwen2ForCausalLM" : model_type == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM";
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = heads > 0 ? hidden / heads : 0;
  c.intermediate_size = intermediate;
  c.vocab_size = vocab;
  c.tie_word_embeddings = tie_embeddings;
  c.attention_bias = model_type == "qwen2";
  c.rms_norm_eps = model_type == "llama" ? 1e-5 : 1e-6;
  c.rope_theta = model_type == "qwen2" ? 1000000.0 : 10000.0;
  c.max_position_embeddings = 4096;
  if (vocab > 2) {
    c.bos_token_id = 1;
    c.eos_token_ids = {2};
  }
  return c;
}

absl::Status WriteRandomModel(const std::string& dir, const RandomModelOptions& options) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16)
    return absl::InvalidArgumentError("--dtype must be f32 or bf16");
  // Round-trip through the parser: what we write must be what we accept.
  ModelConfig config = options.config;
  config.torch_dtype = options.dtype == DType::kBF16 ? "bfloat16" : "float32";
  QLORAD_ASSIGN_OR_RETURN(ModelConfig checked, ParseModelConfig(ModelConfigToJson(config), "generated config"));
  (void)checked;
  QLORAD_RETURN_IF_ERROR(EnsureDirectory(dir));
  if (!options.tokenizer_path.empty())
    QLORAD_RETURN_IF_ERROR(CopyTokenizer(options.tokenizer_path, dir, config.vocab_size));
  std::vector<RandomTensor> layout = Layout(config, options.dtype);
  std::vector<TensorSpec> specs;
  for (const auto& t : layout) specs.push_back(t.spec);
  QLORAD_ASSIGN_OR_RETURN(at::ScalarType type, ToScalarType(options.dtype));
  auto fill = [&](size_t index, absl::Span<uint8_t> out) {
    return CatchTorchErrors("generating weights", [&] {
      at::Tensor t = Sample(layout[index], options.seed).to(type).contiguous();
      std::memcpy(out.data(), t.data_ptr(), out.size());
    });
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
  QLORAD_RETURN_IF_ERROR(WriteShardedSafetensors(dir, specs, metadata, options.max_shard_bytes, fill));
  return WriteFileAtomically(dir + "/config.json", ModelConfigToJson(config));
}

}  // namespace qlorad
