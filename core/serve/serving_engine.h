// The serving engine: one resident base model, many adapters layered over it.
//
// Contract:
//  * Adapters are addressed by id ("name@version") in an AdapterRegistry with
//    device/host/disk tiers and an LRU bound (adapter_registry.h). LoadAdapter
//    validates and places an adapter; a failed load changes nothing and affects no
//    other adapter or request. Loading an id that is already registered only
//    prefetches it (and adds the pin if asked).
//  * A request pins the adapter copy it resolved when admitted (a shared_ptr) and
//    finishes on it; UnloadAdapter and eviction only drop the registry's reference.
//  * Generation runs through the continuous batcher (continuous_batcher.h): many
//    requests, each with its own adapter, share every decode step; the KV cache is
//    paged with a byte budget. Label scoring, constrained choice and embeddings run
//    their own forwards between batch steps (same model mutex).
//  * Admission: generation queues in the batcher up to max_waiting, then
//    RESOURCE_EXHAUSTED; the other request kinds are bounded by max_waiting in flight.
//  * Structured outputs (GenerateCall::constraint): the grammar is compiled before
//    admission (a bad schema is INVALID_ARGUMENT and costs no batch slot) and
//    applied per row inside the batcher.
//  * Prompt and output limits: INVALID_ARGUMENT naming the field past
//    max_prompt_tokens / max_new_tokens.
//  * Locking: model_mu_ serializes forwards (the batcher's steps and the direct ones
//    here) and guards the routing slot; it is never held while taking another lock
//    (the registry's, the batcher's or a stream's). Checked by clang -Wthread-safety.
#ifndef QLORAD_CORE_SERVE_SERVING_ENGINE_H_
#define QLORAD_CORE_SERVE_SERVING_ENGINE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>  // std::once_flag
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/constrain/token_grammar.h"
#include "core/model/device.h"
#include "core/model/generate.h"
#include "core/model/loader.h"
#include "core/serve/adapter_registry.h"
#include "core/serve/continuous_batcher.h"
#include "core/serve/generation_limits.h"
#include "core/serve/multi_lora_linear.h"
#include "core/serve/serving_adapter.h"
#include "core/tokenizer/prompt_format.h"
#include "core/tokenizer/tokenizer.h"

namespace qlorad::serve {

struct EngineOptions {
  std::string model_dir;
  std::string device = "auto";    // cpu | cuda:N | auto
  std::string quantize = "none";  // none | nf4 | fp4 (pre-quantized checkpoints load as 4-bit regardless)
  std::string prompt_format;      // "" = detect from the tokenizer
  int64_t max_prompt_tokens = 2048;
  int64_t max_new_tokens = kDefaultMaxNewTokensLimit;
  int64_t max_lora_rank = 64;
  // LoRA factors' dtype: "compute" (the model's) or "bf16" (fp32 CPU serving: half the
  // adapter bytes per decode step; the factors rounded to bf16, activations stay fp32).
  std::string adapter_factors = "compute";
  int64_t max_waiting = 4096;     // queued requests beyond this are RESOURCE_EXHAUSTED
  // Continuous batching and the paged KV cache.
  int64_t kv_cache_bytes = 256ll << 20;  // KV pool budget on the compute device
  int64_t kv_block_size = 16;            // positions per block
  int64_t max_running = 64;              // sequences decoded together
  int64_t prefill_chunk_tokens = 256;    // prompt tokens per step (chunked prefill)
  // Adapter residency.
  int64_t max_device_adapters = 64;      // LRU bound of adapters on the compute device
  int64_t max_host_adapters = 256;       // host-RAM tier (GPU serving only)
  bool start_batching = true;            // false: the batcher waits for StartBatching() (tests)
};

// Engine-wide serving gauges and counters for metrics.
struct EngineStats {
  BatcherStats batch;
  RegistryCounters adapters;
  std::vector<AdapterResidency> residency;
  int64_t in_flight = 0;  // admitted requests of every kind not finished
  int64_t weights_bytes = 0;  // the base model's tensors on the compute device
  std::string device;
  std::optional<DeviceMemory> device_memory;  // accelerator only
};

struct GenerateCall {
  std::string adapter_id;            // "" = base model only
  std::string prompt;                // rendered through the prompt format unless raw_prompt
  std::string input;                 // optional input section (alpaca) / appended context
  bool raw_prompt = false;           // tokenize `prompt` as is (with the tokenizer's special prefix)
  int64_t max_new_tokens = kDefaultMaxNewTokens;  // 0 = as many as fit in the context (at most EngineOptions::max_new_tokens)
  SamplingOptions sampling;
  std::vector<int64_t> prompt_ids = {};  // pre-tokenized prompt (overrides prompt/input; tests and benches)
  bool keep_logits = false;          // return each generated position's logits (tests)
  // A conversation (overrides prompt/input), rendered with `format` (default: the
  // engine's) and ending with the assistant's generation prompt.
  std::vector<tokenizer::ChatMessage> messages = {};
  std::optional<tokenizer::PromptFormat> format = std::nullopt;
  std::vector<std::string> stop = {};         // stop strings: the text ends before the first one
  constrain::ConstraintSpec constraint = {};  // structured output
  int64_t top_logprobs = -1;                  // >= 0: per-token log-probabilities (+ top N)
};

struct GenerateOutcome {
  std::string text;
  std::vector<int64_t> prompt_ids;  // the rendered prompt (for drift monitoring)
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> logits;   // per generated token, fp32 [vocab], when GenerateCall::keep_logits
  std::vector<TokenLogprob> logprobs;  // per generated token, when GenerateCall::top_logprobs >= 0
  int64_t prompt_tokens = 0;
  FinishReason finish_reason = FinishReason::kLength;
  double time_to_first_token_seconds = 0;
  double total_seconds = 0;
};

// Called with each decoded text piece with its token (the piece may be empty for a
// partial UTF-8 sequence or text held back for a stop string); at the end, text still
// held back comes with token -1. Returning false cancels the request.
using PieceCallback = std::function<bool(const std::string& piece, int64_t token)>;

struct LabelScores {
  std::vector<int64_t> prompt_ids;  // the shared classification prompt
  std::vector<std::string> labels;
  std::vector<double> log_likelihoods;  // sum over the label's completion tokens
  std::string predicted;                // argmax
};

class ServingEngine {
 public:
  static absl::StatusOr<std::unique_ptr<ServingEngine>> Create(const EngineOptions& options);

  absl::Status LoadAdapter(const std::string& id, const std::string& dir, bool allow_base_mismatch = false,
                           bool pin = false);
  absl::Status UnloadAdapter(const std::string& id);
  bool IsLoaded(const std::string& id) const { return adapters_->Contains(id); }
  // The device-tier copy of `id`, or nullptr when it is not on the device right now.
  std::shared_ptr<const ServingAdapter> FindAdapter(const std::string& id) const { return adapters_->FindResident(id); }
  std::vector<AdapterResidency> Residency() const { return adapters_->Residency(); }
  std::optional<AdapterResidency> ResidencyOf(const std::string& id) const { return adapters_->ResidencyOf(id); }
  // Gauges now; counters and per-step batch sizes since the previous call.
  EngineStats DrainStats();
  void StartBatching() { batcher_->Start(); }

  absl::StatusOr<GenerateOutcome> Generate(const GenerateCall& call, const PieceCallback& on_piece = nullptr)
      ABSL_LOCKS_EXCLUDED(model_mu_);
  // Log-likelihood of each label as the completion of the classification prompt for `text`
  // (the same rendering the trainer uses), with `adapter_id` ("" = base).
  absl::StatusOr<LabelScores> ScoreLabels(const std::string& adapter_id, const std::string& text,
                                          const std::vector<std::string>& labels) ABSL_LOCKS_EXCLUDED(model_mu_);

  // Summed log-likelihood of each completion of `prompt`, rendered as the trainer renders
  // prompt/completion and preference examples, with `adapter_id` ("" = base).
  absl::StatusOr<std::vector<double>> ScoreCompletions(const std::string& adapter_id, const std::string& prompt,
                                                       const std::vector<std::string>& completions)
      ABSL_LOCKS_EXCLUDED(model_mu_);

  // Constrained greedy generation over the label set: decoding may only follow the
  // tokenization of some label's completion (label + end of turn); at each step the
  // highest-scoring allowed token is taken until one label is complete. Same prompt
  // rendering as ScoreLabels; log_likelihoods are left empty.
  absl::StatusOr<LabelScores> ConstrainedChoice(const std::string& adapter_id, const std::string& text,
                                                const std::vector<std::string>& labels) ABSL_LOCKS_EXCLUDED(model_mu_);

  // Mean-pooled final hidden state of the BASE model (no adapter) for `ids`, in fp32:
  // the prompt embedding drift monitoring compares against the training profile.
  absl::StatusOr<std::vector<float>> EmbedPrompt(const std::vector<int64_t>& ids) ABSL_LOCKS_EXCLUDED(model_mu_);
  // The prompt ids the trainer and ScoreLabels use for a classification `text`
  // (without the completion).
  absl::StatusOr<std::vector<int64_t>> ClassificationPromptIds(const std::string& text) const;

  // The compiled constraint (cached per constraint); INVALID_ARGUMENT naming the field.
  absl::StatusOr<std::shared_ptr<const constrain::TokenGrammar>> Grammar(const constrain::ConstraintSpec& spec);

  const std::string& fingerprint() const { return loaded_.fingerprint; }
  const std::string& model_dir() const { return options_.model_dir; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  tokenizer::PromptFormat prompt_format() const { return format_; }
  bool quantized() const { return quantized_; }
  std::string device() const;
  int64_t in_flight() const { return in_flight_.load(); }
  const EngineOptions& options() const { return options_; }

 private:
  ServingEngine() = default;
  absl::StatusOr<std::shared_ptr<const ServingAdapter>> Pin(const std::string& id) const;
  // RESOURCE_EXHAUSTED when max_waiting requests are already in flight.
  absl::Status Admit() const;
  absl::StatusOr<std::vector<int64_t>> PromptIds(const GenerateCall& call) const;
  // Rendered classification examples for `text`, one per label (ids + trainable mask).
  absl::StatusOr<std::vector<tokenizer::RenderedExample>> RenderLabels(const std::string& text,
                                                                       const std::vector<std::string>& labels) const;
  // INVALID_ARGUMENT when `r` is longer than max_prompt_tokens (naming `field`).
  absl::Status CheckRenderedLength(const tokenizer::RenderedExample& r, const char* field) const;
  // Per rendered example: the summed log-likelihood of its trainable tokens under `adapter`.
  absl::StatusOr<std::vector<double>> ScoreRendered(const ServingAdapter* adapter,
                                                    const std::vector<tokenizer::RenderedExample>& rendered)
      ABSL_LOCKS_EXCLUDED(model_mu_);

  EngineOptions options_;
  LoadedModel loaded_;
  bool quantized_ = false;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  tokenizer::PromptFormat format_{};
  // The adapters of the forward in progress, read by every MultiLoraLinear of the model.
  // slot_ is for sharing it (with the layers and the batcher); access goes through
  // routing_slot_, whose pt_guarded_by clang 14 can check (not on a shared_ptr).
  std::shared_ptr<RoutingSlot> slot_ = std::make_shared<RoutingSlot>();
  RoutingSlot* const routing_slot_ ABSL_PT_GUARDED_BY(model_mu_) = slot_.get();
  std::shared_ptr<BaseModuleShapes> shapes_ = std::make_shared<BaseModuleShapes>();
  std::shared_ptr<BaseModuleLayers> base_layers_ = std::make_shared<BaseModuleLayers>();  // DoRA's row norms
  std::unique_ptr<AdapterRegistry> adapters_;
  absl::Mutex model_mu_;  // one forward at a time (the batcher's steps and the direct forwards)
  std::unique_ptr<ContinuousBatcher> batcher_;
  std::atomic<int64_t> in_flight_{0};
  int64_t weights_bytes_ = 0;
  std::once_flag vocabulary_once_;
  std::shared_ptr<const constrain::TokenVocabulary> vocabulary_;  // built on the first constrained request
  constrain::GrammarCache grammars_;
};

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_SERVING_ENGINE_H_
