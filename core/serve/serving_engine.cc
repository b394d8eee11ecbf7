#include "core/serve/serving_engine.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "core/model/device.h"
#include "core/quant/nf4_model.h"
#include "core/serve/stop_strings.h"
#include "core/tokenizer/instruction_prompt.h"
#include "core/tokenizer/stream_decoder.h"
#include "core/util/scoped_counter.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "kernels/sgmv.h"

namespace qlorad::serve {
namespace {

using Clock = std::chrono::steady_clock;

absl::StatusOr<BatcherOptions> BatchingOptions(const EngineOptions& options, const LoadedModel& loaded) {
  if (options.max_lora_rank < 1 || options.max_lora_rank > kernels::kSgmvMaxRank)
    return absl::InvalidArgumentError(absl::StrCat("max_lora_rank must be in [1, ", kernels::kSgmvMaxRank, "], got ",
                                                   options.max_lora_rank));
  if (options.kv_block_size <= 0 || options.max_running <= 0 || options.prefill_chunk_tokens <= 0)
    return absl::InvalidArgumentError("kv_block_size, max_running and prefill_chunk_tokens must be positive");
  BatcherOptions batching;
  batching.block_size = options.kv_block_size;
  batching.max_running = options.max_running;
  batching.max_waiting = options.max_waiting;
  batching.prefill_chunk_tokens = options.prefill_chunk_tokens;
  const int64_t block_bytes = KvBlockBytes(loaded.config, options.kv_block_size, loaded.model->dtype());
  batching.kv_blocks = options.kv_cache_bytes / block_bytes + 1;  // + the scratch block
  const int64_t longest = std::min(options.max_prompt_tokens + options.max_new_tokens, loaded.config.ContextLimit());
  if (batching.kv_blocks - 1 < (longest + options.kv_block_size - 1) / options.kv_block_size)
    return absl::InvalidArgumentError(absl::StrCat("kv_cache_bytes: ", options.kv_cache_bytes, " bytes hold ",
                                                   batching.kv_blocks - 1, " blocks of ", block_bytes,
                                                   " bytes, too few for one request of ", longest,
                                                   " positions (hint: raise --kv-cache-mb)"));
  return batching;
}

// EngineOptions::adapter_factors -> AdapterLoadOptions::factor_dtype.
absl::StatusOr<std::optional<at::ScalarType>> AdapterFactorDtype(const std::string& name, const c10::Device& device,
                                                                 at::ScalarType compute) {
  if (name == "compute") return std::nullopt;
  if (name != "bf16")
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_factors: '", name, "' is not one of compute, bf16 (hint: --adapter-factors compute|bf16)"));
  if (compute == at::kBFloat16) return std::nullopt;  // already what the model computes in
  if (!device.is_cpu() || compute != at::kFloat)
    return absl::InvalidArgumentError(absl::StrCat("adapter_factors: bf16 factors are for fp32 serving on the CPU, and this ",
                                                   "engine computes in ", c10::toString(compute), " on ", device.str(),
                                                   " (hint: leave --adapter-factors at compute)"));
  return at::kBFloat16;
}

// " (the sliding_window ... of config.json ...)" when the window limits the context, else "".
std::string WhyLimited(const ModelConfig& config) {
  const std::string reason = config.ContextLimitReason();
  return reason.empty() ? "" : absl::StrCat(" (the ", reason, ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServingEngine>> ServingEngine::Create(const EngineOptions& options) {
  std::unique_ptr<ServingEngine> engine(new ServingEngine());
  engine->options_ = options;
  QLORAD_ASSIGN_OR_RETURN(engine->tokenizer_, tokenizer::Tokenizer::Load(options.model_dir));
  if (options.prompt_format.empty()) {
    QLORAD_ASSIGN_OR_RETURN(engine->format_, tokenizer::DetectPromptFormat(*engine->tokenizer_));
  } else {
    QLORAD_ASSIGN_OR_RETURN(engine->format_, tokenizer::PromptFormatFromName(options.prompt_format));
  }
  LoadOptions load;
  QLORAD_ASSIGN_OR_RETURN(load.device, ParseDevice(options.device));
  QLORAD_ASSIGN_OR_RETURN(LinearFactory base,
                          MakeBaseLinearFactory(options.quantize, options.model_dir, {}, &engine->quantized_));
  load.linear_factory = MakeMultiLoraLinearFactory(base, engine->slot_, engine->shapes_, engine->base_layers_);
  QLORAD_ASSIGN_OR_RETURN(engine->loaded_, LoadModel(options.model_dir, load));
  engine->loaded_.model->eval();
  for (const at::Tensor& t : engine->loaded_.model->buffers()) engine->weights_bytes_ += t.numel() * t.element_size();
  for (const at::Tensor& t : engine->loaded_.model->parameters()) engine->weights_bytes_ += t.numel() * t.element_size();
  RegistryOptions registry;
  registry.load.base_fingerprint = engine->loaded_.fingerprint;
  registry.load.max_rank = options.max_lora_rank;
  registry.load.device = engine->loaded_.model->device();
  registry.load.dtype = engine->loaded_.model->dtype();
  QLORAD_ASSIGN_OR_RETURN(registry.load.factor_dtype,
                          AdapterFactorDtype(options.adapter_factors, registry.load.device, registry.load.dtype));
  registry.load.base_weight = [layers = engine->base_layers_](const std::string& module) -> absl::StatusOr<at::Tensor> {
    auto it = layers->find(module);
    if (it == layers->end()) return absl::NotFoundError(absl::StrCat("module '", module, "' is not in the resident base"));
    return BaseLayerWeight(*it->second);
  };
  registry.max_device_adapters = options.max_device_adapters;
  registry.max_host_adapters = options.max_host_adapters;
  engine->adapters_ = std::make_unique<AdapterRegistry>(engine->shapes_.get(), registry);
  QLORAD_ASSIGN_OR_RETURN(BatcherOptions batching, BatchingOptions(options, engine->loaded_));
  engine->batcher_ = std::make_unique<ContinuousBatcher>(engine->loaded_.model, engine->slot_, &engine->model_mu_,
                                                         batching, options.start_batching);
  return engine;
}

EngineStats ServingEngine::DrainStats() {
  const c10::Device device = loaded_.model->device();
  return {batcher_->DrainStats(), adapters_->DrainCounters(), adapters_->Residency(), in_flight_.load(), weights_bytes_,
          device.str(), QueryDeviceMemory(device)};
}

absl::Status ServingEngine::Admit() const {
  if (in_flight_.load() >= options_.max_waiting)
    return absl::ResourceExhaustedError(absl::StrCat("server busy: ", options_.max_waiting, " requests in flight (hint: retry later)"));
  return absl::OkStatus();
}

std::string ServingEngine::device() const { return loaded_.model->device().str(); }

absl::Status ServingEngine::LoadAdapter(const std::string& id, const std::string& dir, bool allow_base_mismatch,
                                        bool pin) {
  RegisterOptions options;
  options.allow_base_mismatch = allow_base_mismatch;
  options.pin = pin;
  return adapters_->Register(id, dir, options);
}

absl::Status ServingEngine::UnloadAdapter(const std::string& id) { return adapters_->Remove(id); }

absl::StatusOr<std::shared_ptr<const ServingAdapter>> ServingEngine::Pin(const std::string& id) const {
  if (id.empty()) return std::shared_ptr<const ServingAdapter>();
  return adapters_->Acquire(id);
}

absl::StatusOr<std::vector<int64_t>> ServingEngine::PromptIds(const GenerateCall& call) const {
  std::vector<int64_t> ids;
  if (!call.prompt_ids.empty()) {
    QLORAD_RETURN_IF_ERROR(ValidateTokenIds(call.prompt_ids, loaded_.config.vocab_size, "prompt_ids"));
    ids = call.prompt_ids;
  } else if (!call.messages.empty()) {
    QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderChat(call.format.value_or(format_), call.messages, *tokenizer_,
                                                                 /*add_generation_prompt=*/true));
    QLORAD_ASSIGN_OR_RETURN(tokenizer::RenderedExample rendered, tokenizer::TokenizeSegments(segments, *tokenizer_));
    ids.assign(rendered.ids.begin(), rendered.ids.end());
  } else if (call.prompt.empty()) {
    return absl::InvalidArgumentError("prompt: must not be empty");
  } else if (call.raw_prompt) {
    QLORAD_ASSIGN_OR_RETURN(std::vector<int32_t> encoded, tokenizer_->Encode(call.prompt, true));
    ids.assign(encoded.begin(), encoded.end());
  } else {
    QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderInstruction(format_, call.prompt, call.input, "", *tokenizer_));
    QLORAD_ASSIGN_OR_RETURN(ids, tokenizer::TokenizePrompt(segments, *tokenizer_));
  }
  if (static_cast<int64_t>(ids.size()) > options_.max_prompt_tokens)
    return absl::InvalidArgumentError(absl::StrCat("prompt: ", ids.size(), " tokens exceed the limit of ",
                                                   options_.max_prompt_tokens, " (hint: shorten the prompt)"));
  return ids;
}

absl::StatusOr<GenerateOutcome> ServingEngine::Generate(const GenerateCall& call, const PieceCallback& on_piece) {
  if (call.max_new_tokens < 0 || call.max_new_tokens > options_.max_new_tokens)
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens: must be in [1, ", options_.max_new_tokens,
                                                   "] (or 0: as many as fit), got ", call.max_new_tokens));
  QLORAD_RETURN_IF_ERROR(ValidateSamplingOptions(call.sampling));
  ScopedCounter guard(in_flight_);
  SequenceSpec spec;
  QLORAD_ASSIGN_OR_RETURN(spec.prompt, PromptIds(call));  // before Pin: a refused prompt never loads an adapter
  const int64_t context = loaded_.config.ContextLimit();  // the sliding window when smaller
  const int64_t prompt_tokens = static_cast<int64_t>(spec.prompt.size());
  // 0 = as many as fit in the context (up to the engine's limit).
  const int64_t max_new_tokens =
      call.max_new_tokens > 0 ? call.max_new_tokens : std::min(options_.max_new_tokens, context - prompt_tokens);
  if (max_new_tokens <= 0 || prompt_tokens + max_new_tokens > context)
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens: prompt (", prompt_tokens, " tokens) + max_new_tokens (",
                                                   max_new_tokens, ") exceeds the model's context of ", context,
                                                   " positions", WhyLimited(loaded_.config),
                                                   " (hint: shorten the prompt or ask for fewer tokens)"));
  QLORAD_RETURN_IF_ERROR(ValidateStopStrings(call.stop));
  if (call.constraint.active()) {
    QLORAD_ASSIGN_OR_RETURN(spec.grammar, Grammar(call.constraint));
  }
  QLORAD_ASSIGN_OR_RETURN(spec.adapter, Pin(call.adapter_id));
  spec.max_new_tokens = max_new_tokens;
  spec.sampling = call.sampling;
  spec.keep_logits = call.keep_logits;
  spec.top_logprobs = call.top_logprobs;
  if (tokenizer_->eos_id()) spec.stop_token_ids.push_back(*tokenizer_->eos_id());
  GenerateOutcome outcome;
  outcome.prompt_tokens = static_cast<int64_t>(spec.prompt.size());
  outcome.prompt_ids = spec.prompt;
  const auto start = Clock::now();
  QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<SequenceStream> stream, batcher_->Submit(std::move(spec)));
  tokenizer::StreamDecoder decoder(tokenizer_.get(), /*skip_special_tokens=*/true);
  StopStringFilter stops(call.stop);
  bool stopped = false;
  auto emit = [&](const std::string& piece, int64_t token) {  // token < 0: held-back text at the end
    outcome.text += piece;
    if (on_piece && (token >= 0 || !piece.empty()) && !on_piece(piece, token)) stream->Cancel();
  };
  for (;;) {
    SequenceStream::Update update = stream->Wait();
    for (size_t i = 0; i < update.tokens.size() && !stream->cancelled() && !stopped; ++i) {
      const int64_t token = update.tokens[i];
      if (outcome.tokens.empty()) outcome.time_to_first_token_seconds = std::chrono::duration<double>(Clock::now() - start).count();
      outcome.tokens.push_back(token);
      if (i < update.logprobs.size()) outcome.logprobs.push_back(std::move(update.logprobs[i]));
      emit(stops.Push(decoder.Step(static_cast<int32_t>(token)), &stopped), token);
    }
    if (stopped) {
      stream->Cancel();  // the batch slot frees at the next step
      outcome.finish_reason = FinishReason::kStop;
      break;
    }
    if (stream->cancelled()) {
      outcome.finish_reason = FinishReason::kCancelled;
      break;
    }
    if (update.done) {
      if (!update.status.ok()) return update.status;
      outcome.finish_reason = update.reason;
      break;
    }
  }
  if (!stopped && outcome.finish_reason != FinishReason::kCancelled) {
    emit(stops.Push(decoder.Flush(), &stopped), -1);
    if (!stopped) emit(stops.Flush(), -1);
    if (stopped) outcome.finish_reason = FinishReason::kStop;
  }
  outcome.logits = stream->TakeLogits();
  outcome.total_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return outcome;
}

absl::StatusOr<std::shared_ptr<const constrain::TokenGrammar>> ServingEngine::Grammar(
    const constrain::ConstraintSpec& spec) {
  std::call_once(vocabulary_once_, [&] {
    vocabulary_ = constrain::TokenVocabulary::Build(*tokenizer_, static_cast<int32_t>(loaded_.config.vocab_size));
  });
  return grammars_.Get(spec, vocabulary_);
}

absl::StatusOr<std::vector<tokenizer::RenderedExample>> ServingEngine::RenderLabels(
    const std::string& text, const std::vector<std::string>& labels) const {
  if (labels.empty()) return absl::InvalidArgumentError("labels: at least one label is required");
  if (text.empty()) return absl::InvalidArgumentError("text: must not be empty");
  std::vector<tokenizer::RenderedExample> rendered;
  for (const std::string& label : labels) {
    QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderClassification(format_, text, label, *tokenizer_));
    QLORAD_ASSIGN_OR_RETURN(tokenizer::RenderedExample r, tokenizer::TokenizeSegments(segments, *tokenizer_));
    QLORAD_RETURN_IF_ERROR(CheckRenderedLength(r, "text"));
    rendered.push_back(std::move(r));
  }
  return rendered;
}

absl::StatusOr<LabelScores> ServingEngine::ConstrainedChoice(const std::string& adapter_id, const std::string& text,
                                                            const std::vector<std::string>& labels) {
  QLORAD_RETURN_IF_ERROR(Admit());
  ScopedCounter guard(in_flight_);
  QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<const ServingAdapter> adapter, Pin(adapter_id));
  QLORAD_ASSIGN_OR_RETURN(std::vector<tokenizer::RenderedExample> rendered, RenderLabels(text, labels));
  // Shared prompt = ids before the first completion token; continuations = the rest.
  const auto& first = rendered[0];
  const size_t prompt_len = tokenizer::PromptLength(first.trainable);
  std::vector<int64_t> prefix(first.ids.begin(), first.ids.begin() + prompt_len);
  std::vector<std::vector<int64_t>> continuations;
  for (const auto& r : rendered) {
    if (r.ids.size() <= prompt_len || !std::equal(prefix.begin(), prefix.end(), r.ids.begin()))
      return absl::InternalError("labels render with different prompts; constrained choice needs a shared prompt");
    continuations.emplace_back(r.ids.begin() + prompt_len, r.ids.end());
  }
  std::vector<size_t> alive(labels.size());
  std::iota(alive.begin(), alive.end(), 0);
  AdapterRouting routing;
  routing.rows = {adapter.get()};
  absl::MutexLock lock(&model_mu_);
  routing_slot_->current = &routing;
  auto chosen = CatchTorchErrors("constrained choice", [&]() -> absl::StatusOr<size_t> {
    at::NoGradGuard no_grad;
    const c10::Device device = loaded_.model->device();
    for (size_t step = 0;; ++step) {
      for (size_t i : alive)
        if (continuations[i].size() == step) return i;  // a label is complete
      at::Tensor ids = at::tensor(prefix, at::kLong).unsqueeze(0).to(device);
      at::Tensor hidden = loaded_.model->Hidden({ids, {}, {}, nullptr}).select(1, -1);
      at::Tensor logits = loaded_.model->lm_head().forward(hidden).to(at::kFloat).cpu().squeeze(0);
      int64_t best = -1;
      float best_score = 0;
      for (size_t i : alive) {
        const int64_t token = continuations[i][step];
        const float score = logits[token].item<float>();
        if (best < 0 || score > best_score) best = token, best_score = score;
      }
      std::vector<size_t> next;
      for (size_t i : alive)
        if (continuations[i][step] == best) next.push_back(i);
      alive = std::move(next);
      prefix.push_back(best);
    }
  });
  routing_slot_->current = nullptr;
  if (!chosen.ok()) return chosen.status();
  const std::vector<int64_t> prompt_ids(first.ids.begin(), first.ids.begin() + prompt_len);
  return LabelScores{prompt_ids, labels, {}, labels[*chosen]};
}

absl::Status ServingEngine::CheckRenderedLength(const tokenizer::RenderedExample& r, const char* field) const {
  if (static_cast<int64_t>(r.ids.size()) > options_.max_prompt_tokens)
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", r.ids.size(), " tokens exceed the limit of ",
                                                   options_.max_prompt_tokens));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> ServingEngine::ScoreRendered(const ServingAdapter* adapter,
                                                                 const std::vector<tokenizer::RenderedExample>& rendered) {
  int64_t longest = 0;
  for (const auto& r : rendered) longest = std::max<int64_t>(longest, r.ids.size());
  const int64_t b = static_cast<int64_t>(rendered.size());
  at::Tensor ids = at::zeros({b, longest}, at::kLong), mask = at::zeros({b, longest}, at::kLong),
             weights = at::zeros({b, longest}, at::kFloat);
  for (int64_t i = 0; i < b; ++i)
    for (size_t t = 0; t < rendered[i].ids.size(); ++t) {
      ids[i][t] = rendered[i].ids[t];
      mask[i][t] = 1;
      if (t > 0 && rendered[i].trainable[t]) weights[i][t - 1] = 1.0f;  // position t-1 predicts token t
    }
  AdapterRouting routing;
  routing.rows.assign(b, adapter);
  absl::MutexLock lock(&model_mu_);
  routing_slot_->current = &routing;
  auto scores = CatchTorchErrors("scoring completions", [&]() -> absl::StatusOr<std::vector<double>> {
    at::NoGradGuard no_grad;
    const c10::Device device = loaded_.model->device();
    // lm_head only where a completion token is predicted (the vocabulary is large, completions short).
    at::Tensor hidden = loaded_.model->Hidden({ids.to(device), {}, mask.to(device), nullptr});
    at::Tensor rows = weights.flatten().nonzero().squeeze(1);
    at::Tensor logits = loaded_.model->lm_head().forward(hidden.flatten(0, 1).index_select(0, rows.to(device)));
    at::Tensor targets = at::roll(ids, -1, 1).flatten().index_select(0, rows);
    at::Tensor picked = at::log_softmax(logits.to(at::kFloat).cpu(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
    at::Tensor sums = at::zeros({b}, at::kFloat).index_add_(0, at::div(rows, longest, "floor"), picked);
    return std::vector<double>(sums.data_ptr<float>(), sums.data_ptr<float>() + b);
  });
  routing_slot_->current = nullptr;
  return scores;
}

absl::StatusOr<LabelScores> ServingEngine::ScoreLabels(const std::string& adapter_id, const std::string& text,
                                                       const std::vector<std::string>& labels) {
  QLORAD_RETURN_IF_ERROR(Admit());
  ScopedCounter guard(in_flight_);
  QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<const ServingAdapter> adapter, Pin(adapter_id));
  QLORAD_ASSIGN_OR_RETURN(std::vector<tokenizer::RenderedExample> rendered, RenderLabels(text, labels));
  QLORAD_ASSIGN_OR_RETURN(std::vector<double> scores, ScoreRendered(adapter.get(), rendered));
  const auto& r0 = rendered[0];
  const size_t prompt_len = tokenizer::PromptLength(r0.trainable);
  LabelScores out{std::vector<int64_t>(r0.ids.begin(), r0.ids.begin() + prompt_len), labels, scores, ""};
  out.predicted = labels[std::max_element(scores.begin(), scores.end()) - scores.begin()];
  return out;
}

absl::StatusOr<std::vector<double>> ServingEngine::ScoreCompletions(const std::string& adapter_id,
                                                                    const std::string& prompt,
                                                                    const std::vector<std::string>& completions) {
  if (completions.empty()) return absl::InvalidArgumentError("completions: at least one completion is required");
  QLORAD_RETURN_IF_ERROR(Admit());
  ScopedCounter guard(in_flight_);
  QLORAD_ASSIGN_OR_RETURN(std::shared_ptr<const ServingAdapter> adapter, Pin(adapter_id));
  std::vector<tokenizer::RenderedExample> rendered;
  for (const std::string& completion : completions) {
    QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderPromptCompletion(format_, prompt, completion, *tokenizer_));
    QLORAD_ASSIGN_OR_RETURN(tokenizer::RenderedExample r, tokenizer::TokenizeSegments(segments, *tokenizer_));
    QLORAD_RETURN_IF_ERROR(CheckRenderedLength(r, "prompt"));
    rendered.push_back(std::move(r));
  }
  return ScoreRendered(adapter.get(), rendered);
}

absl::StatusOr<std::vector<int64_t>> ServingEngine::ClassificationPromptIds(const std::string& text) const {
  QLORAD_ASSIGN_OR_RETURN(auto segments, tokenizer::RenderClassification(format_, text, "", *tokenizer_));
  return tokenizer::TokenizePrompt(segments, *tokenizer_);
}

absl::StatusOr<std::vector<float>> ServingEngine::EmbedPrompt(const std::vector<int64_t>& ids) {
  if (ids.empty()) return absl::InvalidArgumentError("ids: empty prompt");
  QLORAD_RETURN_IF_ERROR(ValidateTokenIds(ids, loaded_.config.vocab_size, "prompt"));
  absl::MutexLock lock(&model_mu_);
  routing_slot_->current = nullptr;  // the base model's view of the prompt
  return CatchTorchErrors("embedding a prompt", [&]() -> absl::StatusOr<std::vector<float>> {
    at::NoGradGuard no_grad;
    at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0).to(loaded_.model->device());
    at::Tensor mean = loaded_.model->Hidden({input, {}, {}, nullptr}).squeeze(0).mean(0).to(at::kFloat).cpu().contiguous();
    return std::vector<float>(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
  });
}

}  // namespace qlorad::serve
