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
#ifndef QLORAD_CORE_SERVE_CONTINUOUS_BATCHER_H_
#define QLORAD_CORE_SERVE_CONTINUOUS_BATCHER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
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
  Update Wait();
  // Asks the loop to drop the sequence at its next step (idempotent).
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_.load(); }
  // [generated, vocab] fp32 logits when keep_logits; complete once done.
  std::vector<at::Tensor> TakeLogits();

 private:
  friend class ContinuousBatcher;
  void Push(int64_t token, at::Tensor logits, std::optional<TokenLogprob> logprob);
  void Finish(FinishReason reason, absl::Status status);

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> pending_;
  std::vector<TokenLogprob> pending_logprobs_;
  std::vector<at::Tensor> logits_;
  bool done_ = false;
  FinishReason reason_ = FinishReason::kLength;
  absl::Status status_;
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
  ContinuousBatcher(LlamaModel model, std::shared_ptr<RoutingSlot> slot, std::mutex* model_mu,
                    const BatcherOptions& options, bool start = true);
  ~ContinuousBatcher();  // fails queued and running sequences with UNAVAILABLE

  absl::StatusOr<std::shared_ptr<SequenceStream>> Submit(SequenceSpec spec);
  void Start();
  // Current gauges; batch_rows holds the per-step sizes since the last call.
  BatcherStats DrainStats();
  const BatcherOptions& options() const { return options_; }

 private:
  struct Sequence;
  void Loop();
  void Step();
  void AdmitWaiting();
  // One forward over `rows`; samples a token for rows whose prompt is then complete.
  void Forward(const std::vector<Sequence*>& rows, const std::vector<int64_t>& new_tokens);
  // Samples the next token of a decoding row from its fp32 logits (masked in place
  // by its grammar) and retires the row when it ends.
  void SampleRow(Sequence& seq, at::Tensor row_logits);
  void Retire(Sequence& seq, FinishReason reason, absl::Status status);

  LlamaModel model_;
  std::shared_ptr<RoutingSlot> slot_;
  std::mutex* model_mu_;
  BatcherOptions options_;
  PagedKvPool pool_;

  std::mutex mu_;  // guards waiting_, stop_, started_, stats_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  bool stop_ = false, started_ = false;
  BatcherStats stats_;
  std::atomic<int64_t> running_count_{0};
  std::vector<std::unique_ptr<Sequence>> running_;  // loop thread only
  std::thread thread_;
};

}  // namespace qlorad::serve

#endif  // QLORAD_CORE_SERVE_CONTINUOUS_BATCHER_H_
