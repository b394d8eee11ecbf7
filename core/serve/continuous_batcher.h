// Continuous batching over one resident model: sequences join and leave the running
// batch at every step (Orca/vLLM style), with a paged KV cache (paged_kv_cache.h).
//
// Contract:
//  * Submit() queues a sequence and returns its stream at once. Past max_waiting
//    queued sequences: RESOURCE_EXHAUSTED. A sequence that could never fit in the KV
//    budget (prompt + max_new_tokens): INVALID_ARGUMENT with a hint.
//  * Admission is FIFO: the head of the queue joins the running batch when a slot
//    (max_running) and its whole KV reservation are free; nothing is preempted.
//  * One step = one forward over all decoding sequences (one token each) plus one
//    forward over prompt chunks of at most prefill_chunk_tokens in total (chunked
//    prefill), so a long prompt delays running streams by one chunk, not the prompt.
//  * Each row carries its own adapter (the pinned ServingAdapter of the request); the
//    routing slot is set for each forward under the shared model mutex, which callers
//    outside the loop (label scoring, embeddings) take for their own forwards.
//  * A cancelled stream leaves the batch at the next step; its blocks are freed.
//    A failed forward fails only the sequences in it, with the error.
//  * A row with a grammar samples only the tokens its grammar allows (the mask is
//    applied to that row's logits alone, so constrained and free rows share steps).
//  * Tokens are produced by the loop thread and read by the caller thread
//    (SequenceStream::Wait), so a slow reader never stalls the batch.
//  * Locking (checked by clang -Wthread-safety, deploy/thread-safety-check.sh): the
//    batcher's mu_ guards the queue and the gauges; the shared model mutex guards the
//    routing slot for a forward; a stream's own mu_ guards its tokens. Order: the
//    batcher's mu_ may be held while taking a stream's mu_, never the other way; the
//    model mutex is never held with either. running_ and pool_ belong to the loop thread.
#ifndef QLORAD_CORE_SERVE_CONTINUOUS_BATCHER_H_
#define QLORAD_CORE_SERVE_CONTINUOUS_BATCHER_H_

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/model/generate.h"
#include "core/constrain/token_grammar.h"
#include "core/model/llama.h"
#include "core/serve/multi_lora_linear.h"
#include "core/serve/paged_kv_cache.h"

namespace qlorad::serve {

struct BatcherOptions {
  int64_t block_size = 16;            // positions per KV block
  int64_t kv_blocks = 1024;           // pool size including the scratch block
  int64_t max_running = 64;           // sequences in the running batch
  int64_t max_waiting = 4096;         // queued sequences beyond this: RESOURCE_EXHAUSTED
  int64_t prefill_chunk_tokens = 256; // prompt tokens per step across all prefilling sequences
};

struct SequenceSpec {
  std::vector<int64_t> prompt;  // validated token ids, non-empty
  int64_t max_new_tokens = 1;
  SamplingOptions sampling;
  std::vector<int64_t> stop_token_ids;
  std::shared_ptr<const ServingAdapter> adapter;  // nullptr = base only
  bool keep_logits = false;                       // record each sampled position's fp32 logits (tests)
  // Structured output: only tokens the grammar allows are sampled; the sequence
  // ends (kStop) when the grammar's text is complete and nothing can follow.
  std::shared_ptr<const constrain::TokenGrammar> grammar;
  int64_t top_logprobs = -1;  // >= 0: each token's log-probability and the top N alternatives
};

// A generated token's log-probability under the model's distribution (raw logits:
// before temperature and the grammar mask), with the most likely alternatives.
struct TokenLogprob {
  double logprob = 0;
  std::vector<std::pair<int64_t, double>> top;  // (token, logprob), most likely first
};

// The caller's end of a running sequence.
class SequenceStream {
 public:
  struct Update {
    std::vector<int64_t> tokens;  // produced since the previous Wait()
    std::vector<TokenLogprob> logprobs;  // one per token when SequenceSpec::top_logprobs >= 0
    bool done = false;
    FinishReason reason = FinishReason::kLength;
    absl::Status status;  // not OK when the sequence failed
  };
  // Blocks until new tokens or the end.
  Update Wait() ABSL_LOCKS_EXCLUDED(mu_);
  // Asks the loop to drop the sequence at its next step (idempotent).
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_.load(); }
  // [generated, vocab] fp32 logits when keep_logits; complete once done.
  std::vector<at::Tensor> TakeLogits() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class ContinuousBatcher;
  void Push(int64_t token, at::Tensor logits, std::optional<TokenLogprob> logprob) ABSL_LOCKS_EXCLUDED(mu_);
  void Finish(FinishReason reason, absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  bool HasUpdateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_.empty() || done_; }

  absl::Mutex mu_;  // Wait() blocks on HasUpdateLocked (absl re-checks it on every unlock)
  std::vector<int64_t> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<TokenLogprob> pending_logprobs_ ABSL_GUARDED_BY(mu_);
  std::vector<at::Tensor> logits_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  FinishReason reason_ ABSL_GUARDED_BY(mu_) = FinishReason::kLength;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> cancelled_{false};
};

struct BatcherStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_used = 0, kv_blocks_reserved = 0, kv_blocks_total = 0;
  int64_t steps = 0;                 // forwards run so far
  int64_t max_batch_rows = 0;        // the most sequences in one step so far
  std::vector<int64_t> batch_rows;   // sequences per step since the previous DrainStats()
  int64_t kv_block_bytes = 0;
};

class ContinuousBatcher {
 public:
  // `model_mu` guards the model and `slot` for every forward. With start = false the
  // loop waits for Start() (tests queue a whole batch first).
  ContinuousBatcher(LlamaModel model, std::shared_ptr<RoutingSlot> slot, absl::Mutex* model_mu,
                    const BatcherOptions& options, bool start = true);
  ~ContinuousBatcher() ABSL_LOCKS_EXCLUDED(mu_);  // fails queued and running sequences with UNAVAILABLE

  absl::StatusOr<std::shared_ptr<SequenceStream>> Submit(SequenceSpec spec) ABSL_LOCKS_EXCLUDED(mu_);
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Current gauges; batch_rows holds the per-step sizes since the last call.
  BatcherStats DrainStats() ABSL_LOCKS_EXCLUDED(mu_);
  const BatcherOptions& options() const { return options_; }

 private:
  struct Sequence;
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  void Step() ABSL_LOCKS_EXCLUDED(mu_);
  void AdmitWaiting() ABSL_LOCKS_EXCLUDED(mu_);
  // The loop's wake-up conditions: with nothing running it waits for queued work,
  // with sequences running only for Start() (or the end).
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || (started_ && !waiting_.empty()); }
  bool StartedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || started_; }
  // One forward over `rows`; samples a token for rows whose prompt is then complete.
  void Forward(const std::vector<Sequence*>& rows, const std::vector<int64_t>& new_tokens)
      ABSL_LOCKS_EXCLUDED(mu_, *model_mu_);
  // Samples the next token of a decoding row from its fp32 logits (masked in place
  // by its grammar) and retires the row when it ends.
  void SampleRow(Sequence& seq, at::Tensor row_logits);
  void Retire(Sequence& seq, FinishReason reason, absl::Status status);

  LlamaModel model_;
  const std::shared_ptr<RoutingSlot> slot_;  // ownership only: access goes through routing_slot_
  absl::Mutex* const model_mu_;               // the engine's: one forward at a time
  // The same slot; clang 14 cannot check pt_guarded_by on a shared_ptr, so the raw pointer carries it.
  RoutingSlot* const routing_slot_ ABSL_PT_GUARDED_BY(model_mu_);
  const BatcherOptions options_;
  PagedKvPool pool_;  // loop thread only (its counters are atomics, read by DrainStats)

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Sequence>> waiting_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> running_count_{0};
  std::vector<std::unique_ptr<Sequence>> running_;  // loop thread only
  std::thread thread_;
};

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_CONTINUOUS_BATCHER_H_
