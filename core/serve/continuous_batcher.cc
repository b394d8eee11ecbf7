#include "core/serve/continuous_batcher.h"

#include <algorithm>
#include <exception>

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"

namespace qlorad::serve {

struct ContinuousBatcher::Sequence {
  Sequence(SequenceSpec s, std::shared_ptr<SequenceStream> st) : spec(std::move(s)), stream(std::move(st)), sampler(spec.sampling) {}
  int64_t prompt_length() const { return static_cast<int64_t>(spec.prompt.size()); }
  bool prefilling() const { return kv.length < prompt_length(); }

  SequenceSpec spec;
  std::shared_ptr<SequenceStream> stream;
  Sampler sampler;
  SequenceBlocks kv;
  int64_t generated = 0;
  int64_t last_token = -1;
  int32_t grammar_state = spec.grammar ? spec.grammar->start() : 0;
  bool finished = false;
};

SequenceStream::Update SequenceStream::Wait() {
  absl::MutexLock lock(&mu_, absl::Condition(this, &SequenceStream::HasUpdateLocked));
  Update update;
  update.tokens.swap(pending_);
  update.logprobs.swap(pending_logprobs_);
  update.done = done_;
  update.reason = reason_;
  update.status = status_;
  return update;
}

std::vector<at::Tensor> SequenceStream::TakeLogits() {
  absl::MutexLock lock(&mu_);
  return std::move(logits_);
}

void SequenceStream::Push(int64_t token, at::Tensor logits, std::optional<TokenLogprob> logprob) {
  absl::MutexLock lock(&mu_);  // Wait() wakes on the unlock
  pending_.push_back(token);
  if (logprob) pending_logprobs_.push_back(std::move(*logprob));
  if (logits.defined()) logits_.push_back(std::move(logits));
}

void SequenceStream::Finish(FinishReason reason, absl::Status status) {
  absl::MutexLock lock(&mu_);
  done_ = true;
  reason_ = reason;
  status_ = std::move(status);
}

ContinuousBatcher::ContinuousBatcher(LlamaModel model, std::shared_ptr<RoutingSlot> slot, absl::Mutex* model_mu,
                                     const BatcherOptions& options, bool start)
    : model_(std::move(model)),
      slot_(std::move(slot)),
      model_mu_(model_mu),
      routing_slot_(slot_.get()),
      options_(options),
      pool_(model_->config(), options.block_size, options.kv_blocks, model_->embed_tokens().options()),
      started_(start) {
  stats_.kv_blocks_total = pool_.usable_blocks();
  stats_.kv_block_bytes = KvBlockBytes(model_->config(), options.block_size, model_->dtype());
  thread_ = std::thread([this] { Loop(); });
}

ContinuousBatcher::~ContinuousBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void ContinuousBatcher::Start() {
  absl::MutexLock lock(&mu_);
  started_ = true;
}

absl::StatusOr<std::shared_ptr<SequenceStream>> ContinuousBatcher::Submit(SequenceSpec spec) {
  const int64_t positions = static_cast<int64_t>(spec.prompt.size()) + spec.max_new_tokens;
  if (pool_.BlocksFor(positions) > pool_.usable_blocks())
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens: prompt (", spec.prompt.size(), " tokens) + max_new_tokens (", spec.max_new_tokens, ") needs ",
        pool_.BlocksFor(positions), " KV blocks but the cache holds ", pool_.usable_blocks(),
        " (hint: lower max_new_tokens or start qlorad with a larger --kv-cache-mb)"));
  auto stream = std::make_shared<SequenceStream>();
  {
    absl::MutexLock lock(&mu_);  // the loop wakes on the unlock
    if (stop_) return absl::UnavailableError("the serving engine is shutting down (hint: retry on another replica)");
    if (static_cast<int64_t>(waiting_.size()) >= options_.max_waiting)
      return absl::ResourceExhaustedError(
          absl::StrCat("server busy: ", waiting_.size(), " requests are queued for the KV cache (hint: retry later)"));
    waiting_.push_back(std::make_unique<Sequence>(std::move(spec), stream));
  }
  return stream;
}

BatcherStats ContinuousBatcher::DrainStats() {
  absl::MutexLock lock(&mu_);
  BatcherStats out = stats_;
  stats_.batch_rows.clear();
  out.running = running_count_.load();
  out.waiting = static_cast<int64_t>(waiting_.size());
  out.kv_blocks_used = pool_.used_blocks();
  out.kv_blocks_reserved = pool_.reserved_blocks();
  return out;
}

void ContinuousBatcher::Loop() {
  for (;;) {
    {
      // running_ is the loop's own: the condition other threads evaluate reads only
      // guarded state, so the choice of condition is made here, before waiting.
      absl::MutexLock lock(&mu_);
      if (running_.empty()) {
        mu_.Await(absl::Condition(this, &ContinuousBatcher::HasWorkLocked));
      } else {
        mu_.Await(absl::Condition(this, &ContinuousBatcher::StartedLocked));
      }
      if (stop_) break;
    }
    Step();
  }
  const absl::Status closing = absl::UnavailableError("the serving engine is shutting down (hint: retry on another replica)");
  for (auto& seq : running_) Retire(*seq, FinishReason::kCancelled, closing);
  absl::MutexLock lock(&mu_);
  for (auto& seq : waiting_) seq->stream->Finish(FinishReason::kCancelled, closing);
  waiting_.clear();
}

void ContinuousBatcher::AdmitWaiting() {
  absl::MutexLock lock(&mu_);
  while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < options_.max_running) {
    Sequence& head = *waiting_.front();
    if (head.stream->cancelled()) {
      head.stream->Finish(FinishReason::kCancelled, absl::OkStatus());
      waiting_.pop_front();
      continue;
    }
    const int64_t blocks = pool_.BlocksFor(head.prompt_length() + head.spec.max_new_tokens);
    if (!pool_.TryReserve(blocks)) break;  // FIFO: later requests wait behind the head
    head.kv.reserved = blocks;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  running_count_ = static_cast<int64_t>(running_.size());
}

void ContinuousBatcher::Step() {
  AdmitWaiting();
  for (auto& seq : running_)
    if (seq->stream->cancelled()) Retire(*seq, FinishReason::kCancelled, absl::OkStatus());
  std::vector<Sequence*> decode, prefill;
  std::vector<int64_t> decode_tokens, prefill_tokens;
  int64_t budget = options_.prefill_chunk_tokens;
  for (auto& seq : running_) {
    if (seq->finished) continue;
    if (!seq->prefilling()) {
      decode.push_back(seq.get());
      decode_tokens.push_back(1);
    } else if (budget > 0) {
      const int64_t chunk = std::min(budget, seq->prompt_length() - seq->kv.length);
      prefill.push_back(seq.get());
      prefill_tokens.push_back(chunk);
      budget -= chunk;
    }
  }
  if (!decode.empty()) Forward(decode, decode_tokens);
  if (!prefill.empty()) Forward(prefill, prefill_tokens);
  {
    absl::MutexLock lock(&mu_);
    const int64_t rows = static_cast<int64_t>(decode.size() + prefill.size());
    stats_.steps += !decode.empty() + !prefill.empty();
    stats_.max_batch_rows = std::max(stats_.max_batch_rows, rows);
    if (rows > 0) stats_.batch_rows.push_back(rows);
  }
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const auto& s) { return s->finished; }),
                 running_.end());
  running_count_ = static_cast<int64_t>(running_.size());
}

void ContinuousBatcher::Forward(const std::vector<Sequence*>& rows, const std::vector<int64_t>& new_tokens) {
  const int64_t batch = static_cast<int64_t>(rows.size());
  try {
    at::NoGradGuard no_grad;
    std::vector<PagedRow> paged;
    AdapterRouting routing;
    for (int64_t b = 0; b < batch; ++b) {
      paged.push_back({&rows[b]->kv, new_tokens[b]});
      routing.rows.push_back(rows[b]->spec.adapter.get());
    }
    PagedBatchView view(pool_, std::move(paged));
    const int64_t width = view.padded_tokens();
    at::Tensor tokens = at::zeros({batch, width}, at::kLong), last = at::empty({batch}, at::kLong);
    for (int64_t b = 0; b < batch; ++b) {
      Sequence& seq = *rows[b];
      for (int64_t t = 0; t < new_tokens[b]; ++t)
        tokens[b][t] = seq.prefilling() ? seq.spec.prompt[seq.kv.length + t] : seq.last_token;
      last[b] = new_tokens[b] - 1;
    }
    at::Tensor logits;
    {
      absl::MutexLock lock(model_mu_);
      routing_slot_->current = &routing;
      const c10::Device device = model_->device();
      ForwardInput input{tokens.to(device), view.positions(), {}, &view, view.attend()};
      at::Tensor hidden = model_->Hidden(input);
      at::Tensor final_rows = hidden.index({at::arange(batch, hidden.options().dtype(at::kLong)), last.to(device)});
      logits = model_->lm_head().forward(final_rows).to(at::kFloat).cpu();
      routing_slot_->current = nullptr;
    }
    view.Commit();
    for (int64_t b = 0; b < batch; ++b)
      if (!rows[b]->prefilling()) SampleRow(*rows[b], logits[b]);  // else a chunk that does not end the prompt
  } catch (const std::exception& e) {
    {
      absl::MutexLock lock(model_mu_);
      routing_slot_->current = nullptr;
    }
    const absl::Status error = absl::InternalError(absl::StrCat("batched forward failed: ", e.what()));
    for (Sequence* seq : rows) Retire(*seq, FinishReason::kCancelled, error);
  }
}

void ContinuousBatcher::SampleRow(Sequence& seq, at::Tensor row_logits) {
  const SequenceSpec& spec = seq.spec;
  float* row = row_logits.data_ptr<float>();
  at::Tensor kept_logits = spec.keep_logits ? row_logits.clone() : at::Tensor();
  std::optional<TokenLogprob> logprob;
  at::Tensor log_probs;
  if (spec.top_logprobs >= 0) log_probs = at::log_softmax(row_logits, -1);  // before the mask
  if (spec.grammar) {
    if (spec.grammar->vocabulary().size() != row_logits.numel())
      return Retire(seq, FinishReason::kCancelled,
                    absl::InternalError(absl::StrCat("structured output: the grammar's vocabulary has ",
                                                     spec.grammar->vocabulary().size(), " ids, the logits ", row_logits.numel())));
    if (spec.grammar->terminal(seq.grammar_state)) return Retire(seq, FinishReason::kStop, absl::OkStatus());
    spec.grammar->ApplyMask(seq.grammar_state, row);
  }
  const int64_t token = seq.sampler.Next(row_logits);
  if (spec.grammar) {
    seq.grammar_state = spec.grammar->Advance(seq.grammar_state, static_cast<int32_t>(token));
    if (seq.grammar_state == constrain::ByteDfa::kDead)
      return Retire(seq, FinishReason::kCancelled,
                    absl::FailedPreconditionError("structured output: no token of the vocabulary continues the constrained text"));
  }
  if (log_probs.defined()) {
    const float* lp = log_probs.data_ptr<float>();
    logprob = TokenLogprob{lp[token], {}};
    if (spec.top_logprobs > 0) {
      auto [values, ids] = at::topk(log_probs, std::min<int64_t>(spec.top_logprobs, log_probs.numel()));
      for (int64_t i = 0; i < ids.numel(); ++i) logprob->top.emplace_back(ids[i].item<int64_t>(), values[i].item<float>());
    }
  }
  seq.last_token = token;
  ++seq.generated;
  seq.stream->Push(token, std::move(kept_logits), std::move(logprob));
  const auto& stops = spec.stop_token_ids;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
    Retire(seq, FinishReason::kStop, absl::OkStatus());
  } else if (spec.grammar && spec.grammar->terminal(seq.grammar_state)) {
    Retire(seq, FinishReason::kStop, absl::OkStatus());  // the constrained text is complete
  } else if (seq.generated >= spec.max_new_tokens) {
    Retire(seq, FinishReason::kLength, absl::OkStatus());
  }
}

void ContinuousBatcher::Retire(Sequence& seq, FinishReason reason, absl::Status status) {
  if (seq.finished) return;
  seq.finished = true;
  for (int64_t block : seq.kv.blocks) pool_.Free(block);
  seq.kv.blocks.clear();
  pool_.Unreserve(seq.kv.reserved);
  seq.kv.reserved = 0;
  seq.stream->Finish(reason, std::move(status));
}

}  // namespace qlorad::serve
