// Batch-1..8 incremental decode on the CPU in fp32 without per-op dispatch: one
// decoder step runs as a few fork-join regions per layer over raw weight pointers
// (kernels/matvec.h, kernels/decode_ops.h): q/k/v in one pass, rope in place, the
// new key/value written straight into the KvCache, attention per head, o, gate/up in
// one pass with SwiGLU applied by each thread to the rows it computed, down, and the
// vocabulary head. Prefill stays on libtorch
// (LlamaModel::forward) and shares the same KvCache, so the two paths can alternate.
//
// Projections whose layer offers a StreamableWeight (linear.h: dense fp32, NF4/FP4) take
// the fused kernels; the rows of q/k/v (and of gate/up) are split across the threads as
// one range. A plain LoRA layer (StreamableAdapter) takes them too: its base as above, its
// update as x·Aᵀ once, then each thread adds scaling·(x·Aᵀ)·Bᵀ to the rows it computed.
// Any other LinearLayer (DoRA, active dropout, other dtypes) is called through its own
// forward on the same buffers, so every model the reference path runs works here too.
// Base weights are read in place and never copied or mutated (a LoRA's factors are
// copied at Create, the adapter's state then fixed for this decoder). Results equal
// LlamaModel::forward up to fp32 summation order (tests: decode_fused_test).
#ifndef QLORAD_CORE_MODEL_FUSED_DECODER_H_
#define QLORAD_CORE_MODEL_FUSED_DECODER_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model/kv_cache.h"
#include "core/model/llama.h"
#include "kernels/gemm4bit.h"
#include "kernels/gemm4bit_q8.h"
#include "kernels/matvec.h"
#include "kernels/quant4bit.h"

namespace qlorad {

// How the fused decoder stores the vocabulary head it streams every step (--serve-head).
// kFp32 reads the model's own weight; the others read a serving copy made at Create
// (the model's weight is kept, unchanged, for training and the libtorch path):
// kBf16 rounds each weight to bfloat16 (half the bytes), kInt8 keeps int8 codes with one
// fp32 scale per row = max|w| / 127 (a quarter of the bytes), kNf4 quantizes it to NF4
// in blocks of 64 with an fp32 absmax each (about an eighth; then streamed by the 4-bit
// kernels like the layers, int8 activations included when asked for).
enum class HeadPrecision { kFp32, kBf16, kInt8, kNf4 };
// "fp32", "bf16", "int8", "nf4"; INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<HeadPrecision> ParseHeadPrecision(const std::string& name);
const char* HeadPrecisionName(HeadPrecision precision);

struct FusedDecoderOptions {
  HeadPrecision head = HeadPrecision::kFp32;
  // True: 4-bit projections take int8 activations and integer dot products
  // (kernels/gemm4bit_q8.h: approximate, its error bound stated there) wherever the
  // shapes allow (in and the block size multiples of 64); else fp32 x (--activations).
  // Those projections' double-quantized block scales are then decoded once into plain
  // fp32 (4 bytes per 64 weights, ~0.4 bit per weight more than the resident form),
  // which the 8-bit kernels read as vectors instead of decoding per block.
  bool int8_activations = false;
};
// The head `qlorad-tool generate` serves with when --serve-head is not given: kInt8 when
// the model's lm_head is a dense fp32 CPU layer (the fused path can copy it), else kFp32.
// int8 was chosen with `qlorad-tool choose-serve-head` on the main job's sentiment task:
// hold-out macro-F1 within 0.01 of the fp32 head's and ≥ 99 % of its greedy tokens, with
// an NF4 and with an fp32 base (tests/bench/RESULTS.md); bf16 and nf4 were outside.
HeadPrecision DefaultServeHead(LlamaModel& model);

// From the tools' --serve-head and --activations (fp32|int8) values; INVALID_ARGUMENT
// naming the flag and the accepted values otherwise.
absl::StatusOr<FusedDecoderOptions> ParseFusedDecoderOptions(const std::string& head, const std::string& activations);

class FusedDecoder {
 public:
  // FAILED_PRECONDITION (with the reason) unless the model computes in fp32 on the CPU,
  // or when a reduced head precision is asked of a head that is not a dense fp32 layer.
  // The decoder shares ownership of the model; the model must keep its layers. Each LoRA
  // layer's state (enabled, dropout active, factors) is read here, once.
  static absl::StatusOr<std::unique_ptr<FusedDecoder>> Create(LlamaModel model, FusedDecoderOptions options = {});

  // One decode step for every row of `cache`: tokens[b] is row b's next input token,
  // at position cache.length(). Appends each layer's key/value, advances the cache by
  // one and returns the logits [batch, vocab] as a view of an internal buffer that the
  // next Step overwrites. batch = tokens.size() = the cache's batch, 1..8.
  // Not thread-safe: one Step at a time per decoder.
  absl::StatusOr<at::Tensor> Step(KvCache& cache, absl::Span<const int64_t> tokens);

  // How many of the model's projections (7 per layer + head) take the fused kernels.
  int fused_projections() const { return fused_projections_; }

 private:
  // A linear layer seen by the step: a weight the kernels stream (dense or 4-bit), or
  // the layer to call.
  struct Projection {
    LinearLayer* layer = nullptr;
    kernels::WeightMatrix matrix;                       // dense when data != nullptr
    std::optional<kernels::Packed4bitView> packed4bit;  // else 4-bit when set
    const float* bias = nullptr;
    int64_t in = 0, out = 0;
    // A plain LoRA on top (LinearLayer::StreamableAdapter): y += scaling · (x·Aᵀ)·Bᵀ, with
    // scaling · x·Aᵀ computed into low_rank_x [batch, rank] before the rows are split. Both
    // factors are copies made at Create (B transposed, lora_b_t [rank, out]): an adapter
    // changed, enabled or disabled afterwards needs a new decoder.
    const float* lora_a = nullptr;
    const float* lora_b_t = nullptr;
    int64_t rank = 0;
    float lora_scaling = 0.0f;
    float* low_rank_x = nullptr;
    bool fused() const { return matrix.data != nullptr || packed4bit.has_value(); }
  };
  struct Layer {
    const float* input_norm = nullptr;
    const float* post_norm = nullptr;
    Projection q, k, v, o, gate, up, down;
  };
  struct Output {
    const Projection* projection;
    float* y;  // [batch, out]
  };

  FusedDecoder(LlamaModel model, FusedDecoderOptions options) : model_(std::move(model)), options_(options) {}
  absl::Status Init();
  absl::Status ReduceHeadPrecision();
  Projection MakeProjection(LinearLayer& layer);
  // low_rank_x = scaling · x · Aᵀ for each fused output that carries a LoRA.
  void ProjectLowRankInputs(std::initializer_list<Output> outputs, const float* x, int batch);
  void EnsureBuffers(int batch, int64_t capacity);
  // x in the form the outputs' fused kernels take: fp32, packed for the 4-bit kernel,
  // or quantized to int8 (FusedDecoderOptions::int8_activations), in scratch buffers.
  struct ProjectionInput {
    const float* x = nullptr;
    int batch = 0;
    bool int8 = false;
    kernels::Gemm4bitInput packed;
    kernels::Q8Input quantized;
  };
  ProjectionInput PrepareInput(std::initializer_list<Output> outputs, const float* x, int batch);
  // y[b, o] = (x · pᵀ)[b, o] for rows o in [row_begin, row_end) of fused projection p,
  // its LoRA term included (ProjectLowRankInputs must have run for this x).
  void RunRows(const Projection& p, const ProjectionInput& input, float* y, int64_t row_begin, int64_t row_end);
  // outputs[j].y = x · W_jᵀ (+ LoRA) for every j; fused ones share one ParallelFor.
  void Project(std::initializer_list<Output> outputs, const float* x, int batch);
  // gate_ = SiLU(x · gateᵀ) ⊙ (x · upᵀ), with each thread applying SwiGLU to the rows it
  // computed (no serial pass). False (nothing done) unless both are fused and equally wide.
  bool ProjectGatedUnit(const Projection& gate, const Projection& up, const float* x, int batch);
  void Attend(KvCache& cache, int64_t layer, int batch);
  void RunStep(KvCache& cache, absl::Span<const int64_t> tokens);

  LlamaModel model_;
  FusedDecoderOptions options_;
  ModelConfig config_;
  const float* embed_ = nullptr;
  const float* final_norm_ = nullptr;
  float norm_eps_ = 0.0f;
  std::vector<float> inv_freq_;
  std::vector<float> rope_cos_sin_;  // this step's RopeCosSin, shared by every layer
  std::vector<Layer> layers_;
  Projection head_;
  std::vector<uint16_t> head_bf16_;  // serving copies of the head (HeadPrecision)
  std::vector<int8_t> head_int8_;
  std::vector<float> head_scale_;
  std::vector<uint8_t> head_nf4_;
  std::deque<std::vector<float>> plain_scales_;  // decoded block scales (int8_activations)
  std::deque<std::vector<float>> low_rank_x_;    // Projection::low_rank_x, [8, rank] each
  std::deque<std::vector<float>> lora_factors_;  // Projection::lora_a and lora_b_t
  int fused_projections_ = 0;

  // Scratch, sized for the largest batch/capacity seen; no allocation in steady state.
  int buffer_batch_ = 0;
  int64_t buffer_capacity_ = 0;
  std::vector<float> hidden_, normed_, q_, k_, v_, attn_, delta_, gate_, up_, scores_, packed_x_;
  std::vector<int8_t> q8_values_;
  std::vector<float> q8_scales_;
  at::Tensor logits_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_MODEL_FUSED_DECODER_H_
