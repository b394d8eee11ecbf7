#include "core/model/fused_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/model/linear.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "kernels/bf16.h"
#include "kernels/decode_ops.h"
#include "kernels/gemm4bit.h"
#include "kernels/gemm4bit_q8.h"
#include "kernels/matvec.h"
#include "kernels/parallel.h"

namespace qlorad {
namespace {

// The fp32 CPU contiguous storage of `t`, or nullptr when it has another form.
const float* Fp32CpuData(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu() || t.scalar_type() != at::kFloat || !t.is_contiguous()) return nullptr;
  return t.data_ptr<float>();
}

// The NF4 serving head's block size (bitsandbytes' default for weights).
constexpr int64_t kHeadNf4Blocksize = 64;

// Rows per ParallelFor chunk: about 16 KB of weights, so chunks stay balanced.
int64_t RowGrain(int64_t in) { return std::max<int64_t>(4, 4096 / std::max<int64_t>(1, in)); }

}  // namespace

absl::StatusOr<HeadPrecision> ParseHeadPrecision(const std::string& name) {
  for (HeadPrecision p : {HeadPrecision::kFp32, HeadPrecision::kBf16, HeadPrecision::kInt8, HeadPrecision::kNf4})
    if (name == HeadPrecisionName(p)) return p;
  return absl::InvalidArgumentError(absl::StrCat("serve head precision '", name, "' (hint: fp32, bf16, int8 or nf4)"));
}

absl::StatusOr<FusedDecoderOptions> ParseFusedDecoderOptions(const std::string& head, const std::string& activations) {
  FusedDecoderOptions options;
  QLORAD_ASSIGN_OR_RETURN(options.head, ParseHeadPrecision(head));
  if (activations != "fp32" && activations != "int8")
    return absl::InvalidArgumentError(absl::StrCat("--activations '", activations, "' (hint: fp32 or int8)"));
  options.int8_activations = activations == "int8";
  return options;
}

const char* HeadPrecisionName(HeadPrecision precision) {
  switch (precision) {
    case HeadPrecision::kBf16: return "bf16";
    case HeadPrecision::kInt8: return "int8";
    case HeadPrecision::kNf4: return "nf4";
    case HeadPrecision::kFp32: break;
  }
  return "fp32";
}

absl::StatusOr<std::unique_ptr<FusedDecoder>> FusedDecoder::Create(LlamaModel model, FusedDecoderOptions options) {
  if (!model->device().is_cpu() || model->dtype() != at::kFloat)
    return absl::FailedPreconditionError(absl::StrCat("the fused decoder runs fp32 models on the CPU; this one is ",
                                                      c10::toString(model->dtype()), " on ", model->device().str()));
  std::unique_ptr<FusedDecoder> decoder(new FusedDecoder(std::move(model), options));
  QLORAD_RETURN_IF_ERROR(decoder->Init());
  QLORAD_RETURN_IF_ERROR(decoder->ReduceHeadPrecision());
  return decoder;
}

HeadPrecision DefaultServeHead(LlamaModel& model) {
  const std::optional<StreamableWeight> head = model->lm_head().Streamable();
  const bool dense_fp32 = head.has_value() && head->dense.data != nullptr &&
                          head->dense.format == kernels::WeightFormat::kF32;
  return dense_fp32 && model->device().is_cpu() ? HeadPrecision::kInt8 : HeadPrecision::kFp32;
}

FusedDecoder::Projection FusedDecoder::MakeProjection(LinearLayer& layer) {
  Projection p;
  p.layer = &layer;
  p.in = layer.in_features();
  p.out = layer.out_features();
  std::optional<StreamableWeight> weight = layer.Streamable();
  if (!weight.has_value()) {
    if (std::optional<StreamableLowRank> lora = layer.StreamableAdapter()) {
      weight = lora->base;
      p.lora_a = lora_factors_.emplace_back(lora->a, lora->a + lora->rank * p.in).data();
      std::vector<float>& b_t = lora_factors_.emplace_back(p.out * lora->rank);
      for (int64_t o = 0; o < p.out; ++o)
        for (int64_t j = 0; j < lora->rank; ++j) b_t[j * p.out + o] = lora->b[o * lora->rank + j];
      p.lora_b_t = b_t.data();
      p.rank = lora->rank;
      p.lora_scaling = lora->scaling;
      p.low_rank_x = low_rank_x_.emplace_back(kernels::kMatvecMaxBatch * lora->rank).data();
    }
  }
  if (weight.has_value()) {
    p.matrix = weight->dense;
    if (p.matrix.data == nullptr) p.packed4bit = weight->packed4bit;
    p.bias = weight->bias;
  }
  if (p.packed4bit.has_value() && options_.int8_activations && p.packed4bit->scales.nested() &&
      kernels::Gemm4bitQ8Supports(*p.packed4bit, p.in)) {
    const kernels::AbsmaxView& nested = p.packed4bit->scales;
    std::vector<float>& plain = plain_scales_.emplace_back(nested.codes.size());
    for (size_t b = 0; b < plain.size(); ++b) plain[b] = nested.Get(static_cast<int64_t>(b));
    p.packed4bit->scales = kernels::AbsmaxView{};
    p.packed4bit->scales.absmax = plain;
  }
  if (p.fused()) ++fused_projections_;
  return p;
}

absl::Status FusedDecoder::Init() {
  config_ = model_->config();
  embed_ = Fp32CpuData(model_->embed_tokens());
  final_norm_ = Fp32CpuData(model_->norm()->weight());
  norm_eps_ = static_cast<float>(model_->norm()->eps());
  if (embed_ == nullptr || final_norm_ == nullptr)
    return absl::FailedPreconditionError("the embeddings and final norm must be contiguous fp32 CPU tensors");
  at::Tensor inv_freq = model_->rope().inv_freq().contiguous();
  inv_freq_.assign(inv_freq.data_ptr<float>(), inv_freq.data_ptr<float>() + inv_freq.numel());
  rope_cos_sin_.resize(2 * inv_freq_.size());
  for (int64_t i = 0; i < static_cast<int64_t>(model_->layers().size()); ++i) {
    DecoderLayerImpl& decoder_layer = *model_->layers()[i];
    Layer layer;
    layer.input_norm = Fp32CpuData(decoder_layer.input_norm()->weight());
    layer.post_norm = Fp32CpuData(decoder_layer.post_attention_norm()->weight());
    if (layer.input_norm == nullptr || layer.post_norm == nullptr)
      return absl::FailedPreconditionError(absl::StrCat("layer ", i, ": norm weights must be contiguous fp32 CPU tensors"));
    const auto& attention = decoder_layer.attention()->projections();
    const auto& mlp = decoder_layer.mlp()->projections();
    layer.q = MakeProjection(*attention.q);
    layer.k = MakeProjection(*attention.k);
    layer.v = MakeProjection(*attention.v);
    layer.o = MakeProjection(*attention.o);
    layer.gate = MakeProjection(*mlp.gate);
    layer.up = MakeProjection(*mlp.up);
    layer.down = MakeProjection(*mlp.down);
    layers_.push_back(layer);
  }
  head_ = MakeProjection(model_->lm_head());
  return absl::OkStatus();
}

absl::Status FusedDecoder::ReduceHeadPrecision() {
  if (options_.head == HeadPrecision::kFp32) return absl::OkStatus();
  if (head_.matrix.data == nullptr || head_.matrix.format != kernels::WeightFormat::kF32)
    return absl::FailedPreconditionError(absl::StrCat("--serve-head ", HeadPrecisionName(options_.head),
                                                      " needs a dense fp32 lm_head (hint: --serve-head fp32)"));
  const float* weight = static_cast<const float*>(head_.matrix.data);
  const int64_t rows = head_.out, in = head_.in;
  if (options_.head == HeadPrecision::kBf16) {
    head_bf16_.resize(rows * in);
    kernels::ParallelFor(rows, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin * in; i < end * in; ++i) head_bf16_[i] = kernels::FloatToBf16(weight[i]);
    });
    head_.matrix = kernels::WeightMatrix{kernels::WeightFormat::kBf16, head_bf16_.data(), in, in, nullptr};
    return absl::OkStatus();
  }
  if (options_.head == HeadPrecision::kNf4) {
    if (in % kHeadNf4Blocksize != 0)
      return absl::FailedPreconditionError(absl::StrCat("--serve-head nf4 needs a hidden size that is a multiple of ",
                                                        kHeadNf4Blocksize, "; this model's is ", in,
                                                        " (hint: --serve-head int8)"));
    head_nf4_.resize(kernels::PackedBytes(rows * in));
    head_scale_.resize(kernels::NumBlocks(rows * in, kHeadNf4Blocksize));
    QLORAD_RETURN_IF_ERROR(kernels::Quantize4bit(kernels::QuantType::kNF4, absl::MakeConstSpan(weight, rows * in),
                                                 kHeadNf4Blocksize, absl::MakeSpan(head_nf4_),
                                                 absl::MakeSpan(head_scale_)));
    kernels::Packed4bitView view;
    view.type = kernels::QuantType::kNF4;
    view.packed = head_nf4_;
    view.numel = rows * in;
    view.blocksize = kHeadNf4Blocksize;
    view.scales.absmax = head_scale_;
    head_.packed4bit = view;
    head_.matrix = {};
    return absl::OkStatus();
  }
  head_int8_.resize(rows * in);
  head_scale_.resize(rows);
  kernels::ParallelFor(rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const float* row = weight + o * in;
      float max_abs = 0.0f;
      for (int64_t i = 0; i < in; ++i) max_abs = std::max(max_abs, std::fabs(row[i]));
      const float scale = max_abs > 0.0f ? max_abs / 127.0f : 1.0f;
      head_scale_[o] = scale;
      for (int64_t i = 0; i < in; ++i)
        head_int8_[o * in + i] = static_cast<int8_t>(std::clamp(std::nearbyint(row[i] / scale), -127.0f, 127.0f));
    }
  });
  head_.matrix = kernels::WeightMatrix{kernels::WeightFormat::kInt8RowScaled, head_int8_.data(), in, in,
                                       head_scale_.data()};
  return absl::OkStatus();
}

void FusedDecoder::EnsureBuffers(int batch, int64_t capacity) {
  if (batch > buffer_batch_) {
    const int64_t attention_width = config_.num_attention_heads * config_.head_dim;
    const int64_t kv_width = config_.num_key_value_heads * config_.head_dim;
    hidden_.resize(batch * config_.hidden_size);
    normed_.resize(batch * config_.hidden_size);
    delta_.resize(batch * config_.hidden_size);
    q_.resize(batch * attention_width);
    attn_.resize(batch * attention_width);
    k_.resize(batch * kv_width);
    v_.resize(batch * kv_width);
    gate_.resize(batch * config_.intermediate_size);
    up_.resize(batch * config_.intermediate_size);
    logits_ = at::empty({batch, head_.out}, at::TensorOptions().dtype(at::kFloat));
    buffer_batch_ = batch;
  }
  buffer_capacity_ = std::max(buffer_capacity_, capacity);
  const size_t scores = static_cast<size_t>(buffer_batch_ * config_.num_attention_heads * buffer_capacity_);
  if (scores_.size() < scores) scores_.resize(scores);
}

FusedDecoder::ProjectionInput FusedDecoder::PrepareInput(std::initializer_list<Output> outputs, const float* x,
                                                         int batch) {
  ProjectionInput input;
  input.x = x;
  input.batch = batch;
  const int64_t in = outputs.begin()->projection->in;
  bool any_4bit = false, int8_x = options_.int8_activations;
  for (const Output& output : outputs) {
    const Projection& p = *output.projection;
    if (!p.fused() || !p.packed4bit.has_value()) continue;
    any_4bit = true;
    int8_x &= kernels::Gemm4bitQ8Supports(*p.packed4bit, in);
  }
  input.int8 = any_4bit && int8_x;
  if (input.int8) {
    if (q8_values_.size() < static_cast<size_t>(batch * in)) q8_values_.resize(batch * in);
    const size_t scale_floats = static_cast<size_t>(kernels::Q8ScaleFloats(batch, in));
    if (q8_scales_.size() < scale_floats) q8_scales_.resize(scale_floats);
    input.quantized = kernels::QuantizeQ8Input(x, batch, in, q8_values_.data(), q8_scales_.data());
  } else if (any_4bit) {
    if (packed_x_.size() < static_cast<size_t>(batch * in)) packed_x_.resize(batch * in);
    input.packed = kernels::PackGemm4bitInput(x, batch, in, packed_x_.data());
  }
  return input;
}

void FusedDecoder::RunRows(const Projection& p, const ProjectionInput& input, float* y, int64_t row_begin,
                           int64_t row_end) {
  if (p.packed4bit.has_value() && input.int8) {
    kernels::Gemm4bitQ8Rows(*p.packed4bit, input.quantized, p.bias, y, p.out, row_begin, row_end);
  } else if (p.packed4bit.has_value()) {
    kernels::Gemm4bitRows(*p.packed4bit, input.packed, p.bias, y, p.out, row_begin, row_end);
  } else {
    kernels::MatvecRows(p.matrix, input.x, p.in, input.batch, p.bias, y, p.out, row_begin, row_end);
  }
  if (p.rank > 0) {
    // (scaling · x·Aᵀ) · Bᵀ for these rows, as rank axpys over Bᵀ's row segments.
    const int64_t rows = row_end - row_begin;
    thread_local std::vector<float> update;
    if (update.size() < static_cast<size_t>(rows)) update.resize(rows);
    for (int b = 0; b < input.batch; ++b) {
      kernels::WeightedRowSum(p.lora_b_t + row_begin, p.rank, rows, p.out, p.low_rank_x + b * p.rank, update.data());
      float* y_rows = y + b * p.out + row_begin;
      for (int64_t i = 0; i < rows; ++i) y_rows[i] += update[i];
    }
  }
}

void FusedDecoder::ProjectLowRankInputs(std::initializer_list<Output> outputs, const float* x, int batch) {
  int64_t rows = 0;
  for (const Output& output : outputs)
    if (output.projection->fused()) rows += output.projection->rank;
  if (rows == 0) return;
  // Every output's A rows, numbered one after the other and split across the threads.
  kernels::ParallelFor(rows, 8, [&](int64_t begin, int64_t end) {
    int64_t first = 0;
    for (const Output& output : outputs) {
      const Projection& p = *output.projection;
      if (!p.fused() || p.rank == 0) continue;
      const int64_t lo = std::max(begin, first), hi = std::min(end, first + p.rank);
      if (lo < hi) {
        kernels::MatvecRows(p.lora_a, p.in, p.in, x, p.in, batch, nullptr, p.low_rank_x, p.rank, lo - first,
                            hi - first);
        for (int b = 0; b < batch; ++b)
          for (int64_t j = lo - first; j < hi - first; ++j) p.low_rank_x[b * p.rank + j] *= p.lora_scaling;
      }
      first += p.rank;
    }
  });
}

void FusedDecoder::Project(std::initializer_list<Output> outputs, const float* x, int batch) {
  int64_t units = 0;
  for (const Output& output : outputs) {
    const Projection& p = *output.projection;
    if (p.fused()) {
      units += (p.out + 3) / 4;
      continue;
    }
    at::Tensor in = at::from_blob(const_cast<float*>(x), {batch, p.in}, at::TensorOptions().dtype(at::kFloat));
    at::Tensor result = p.layer->forward(in).contiguous();
    std::memcpy(output.y, result.data_ptr<float>(), sizeof(float) * batch * p.out);
  }
  if (units == 0) return;
  ProjectLowRankInputs(outputs, x, batch);
  const ProjectionInput input = PrepareInput(outputs, x, batch);
  // Every fused output's rows, in quads (the 4-bit kernel decodes four rows together),
  // numbered one after the other and split across the threads.
  kernels::ParallelFor(units, RowGrain(outputs.begin()->projection->in) / 4 + 1, [&](int64_t begin, int64_t end) {
    int64_t first = 0;
    for (const Output& output : outputs) {
      const Projection& p = *output.projection;
      if (!p.fused()) continue;
      const int64_t quads = (p.out + 3) / 4;
      const int64_t start = first, lo = std::max(begin, start), hi = std::min(end, start + quads);
      first += quads;
      if (lo < hi) RunRows(p, input, output.y, 4 * (lo - start), std::min(p.out, 4 * (hi - start)));
    }
  });
}

bool FusedDecoder::ProjectGatedUnit(const Projection& gate, const Projection& up, const float* x, int batch) {
  if (!gate.fused() || !up.fused() || gate.out != up.out) return false;
  ProjectLowRankInputs({{&gate, gate_.data()}, {&up, up_.data()}}, x, batch);
  const ProjectionInput input = PrepareInput({{&gate, gate_.data()}, {&up, up_.data()}}, x, batch);
  const int64_t width = gate.out;
  kernels::ParallelFor((width + 3) / 4, RowGrain(gate.in) / 8 + 1, [&](int64_t begin, int64_t end) {
    const int64_t row_begin = 4 * begin, row_end = std::min(width, 4 * end);
    RunRows(gate, input, gate_.data(), row_begin, row_end);
    RunRows(up, input, up_.data(), row_begin, row_end);
    for (int b = 0; b < batch; ++b)
      kernels::SwiGluInPlace(gate_.data() + b * width + row_begin, up_.data() + b * width + row_begin,
                             row_end - row_begin);
  });
  return true;
}

void FusedDecoder::Attend(KvCache& cache, int64_t layer, int batch) {
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  const int64_t d = config_.head_dim, groups = heads / kv_heads, position = cache.length();
  const int64_t capacity = cache.capacity();
  float* keys = cache.keys(layer).data_ptr<float>();
  float* values = cache.values(layer).data_ptr<float>();
  for (int b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < kv_heads; ++h) {
      const int64_t slot = ((b * kv_heads + h) * capacity + position) * d;
      std::memcpy(keys + slot, k_.data() + (b * kv_heads + h) * d, sizeof(float) * d);
      std::memcpy(values + slot, v_.data() + (b * kv_heads + h) * d, sizeof(float) * d);
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  kernels::ParallelFor(batch * heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const int64_t base = (b * kv_heads + h / groups) * capacity * d;
      kernels::AttendOneQuery(q_.data() + bh * d, keys + base, values + base, position + 1, d, d, scale,
                              scores_.data() + bh * buffer_capacity_, attn_.data() + bh * d);
    }
  });
}

void FusedDecoder::RunStep(KvCache& cache, absl::Span<const int64_t> tokens) {
  const int batch = static_cast<int>(tokens.size());
  const int64_t hidden = config_.hidden_size, position = cache.length();
  EnsureBuffers(batch, cache.capacity());
  for (int b = 0; b < batch; ++b)
    std::memcpy(hidden_.data() + b * hidden, embed_ + tokens[b] * hidden, sizeof(float) * hidden);
  kernels::RopeCosSin(inv_freq_.data(), static_cast<int64_t>(inv_freq_.size()), position, rope_cos_sin_.data());
  for (int64_t i = 0; i < static_cast<int64_t>(layers_.size()); ++i) {
    const Layer& layer = layers_[i];
    for (int b = 0; b < batch; ++b)
      kernels::RmsNorm(hidden_.data() + b * hidden, layer.input_norm, hidden, norm_eps_, normed_.data() + b * hidden);
    Project({{&layer.q, q_.data()}, {&layer.k, k_.data()}, {&layer.v, v_.data()}}, normed_.data(), batch);
    kernels::ApplyRopeCosSin(q_.data(), batch * config_.num_attention_heads, config_.head_dim, rope_cos_sin_.data());
    kernels::ApplyRopeCosSin(k_.data(), batch * config_.num_key_value_heads, config_.head_dim, rope_cos_sin_.data());
    Attend(cache, i, batch);
    Project({{&layer.o, delta_.data()}}, attn_.data(), batch);
    for (int64_t j = 0; j < batch * hidden; ++j) hidden_[j] += delta_[j];
    for (int b = 0; b < batch; ++b)
      kernels::RmsNorm(hidden_.data() + b * hidden, layer.post_norm, hidden, norm_eps_, normed_.data() + b * hidden);
    if (!ProjectGatedUnit(layer.gate, layer.up, normed_.data(), batch)) {
      Project({{&layer.gate, gate_.data()}, {&layer.up, up_.data()}}, normed_.data(), batch);
      kernels::SwiGluInPlace(gate_.data(), up_.data(), batch * config_.intermediate_size);
    }
    Project({{&layer.down, delta_.data()}}, gate_.data(), batch);
    for (int64_t j = 0; j < batch * hidden; ++j) hidden_[j] += delta_[j];
  }
  for (int b = 0; b < batch; ++b)
    kernels::RmsNorm(hidden_.data() + b * hidden, final_norm_, hidden, norm_eps_, normed_.data() + b * hidden);
  Project({{&head_, logits_.data_ptr<float>()}}, normed_.data(), batch);
  cache.Advance(1);
}

absl::StatusOr<at::Tensor> FusedDecoder::Step(KvCache& cache, absl::Span<const int64_t> tokens) {
  const int64_t batch = static_cast<int64_t>(tokens.size());
  if (batch < 1 || batch > kernels::kMatvecMaxBatch)
    return absl::InvalidArgumentError(absl::StrCat("fused decode takes 1 to ", kernels::kMatvecMaxBatch,
                                                   " rows per step, got ", batch));
  if (cache.keys(0).size(0) != batch || !cache.keys(0).device().is_cpu() || cache.keys(0).scalar_type() != at::kFloat)
    return absl::InvalidArgumentError(absl::StrCat("the KV cache must hold ", batch, " fp32 CPU rows (one per token)"));
  if (cache.length() >= cache.capacity())
    return absl::OutOfRangeError(absl::StrCat("KV cache full: ", cache.length(), " of ", cache.capacity(), " positions"));
  for (int64_t b = 0; b < batch; ++b)
    if (tokens[b] < 0 || tokens[b] >= config_.vocab_size)
      return absl::InvalidArgumentError(absl::StrCat("tokens[", b, "] = ", tokens[b], " is outside the vocabulary [0, ",
                                                     config_.vocab_size, ")"));
  return CatchTorchErrors("fused decode step", [&]() -> absl::StatusOr<at::Tensor> {
    at::NoGradGuard no_grad;
    RunStep(cache, tokens);
    return logits_.narrow(0, 0, batch);
  });
}

}  // namespace qlorad
