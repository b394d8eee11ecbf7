// Selective recomputation for gradient checkpointing (core/model/checkpointed_layer.h).
//
// A checkpointed decoder layer's forward records, on a tape, the outputs of the frozen base
// matmuls of the layers that opt in (LoraLinearImpl::set_checkpoint_base); its recompute in
// backward replays them in the same order instead of running those matmuls again. The
// replayed value is the forward's own output, so gradients are those of the forward
// (nothing is recomputed differently). The recorded outputs cost memory from the layer's
// forward until its backward. They must not be modified in place meanwhile: each one's
// version counter is recorded and checked on replay.
//
// One tape is current per thread (ScopedBaseOutputTape); with none current, layers compute
// as usual. Owners are opaque layer identities, checked on replay.
#ifndef QLORAD_CORE_UTIL_BASE_OUTPUT_TAPE_H_
#define QLORAD_CORE_UTIL_BASE_OUTPUT_TAPE_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qlorad {

class BaseOutputTape {
 public:
  // An empty tape that records.
  BaseOutputTape() = default;
  // A tape that replays `outputs`, recorded by `owners` at tensor versions `versions` (all
  // three the same length).
  BaseOutputTape(std::vector<at::Tensor> outputs, std::vector<int64_t> owners, std::vector<int64_t> versions);

  bool replaying() const { return replaying_; }
  // Recording: appends owner's output.
  void Record(const void* owner, const at::Tensor& output);
  // Replaying: the next recorded output. Throws c10::Error (TORCH_CHECK) when the tape is
  // exhausted, the next output is another owner's (the recompute took another path) or it
  // was modified in place since it was recorded.
  at::Tensor Next(const void* owner);
  // Replaying: every output was taken.
  bool Exhausted() const { return next_ == outputs_.size(); }

  const std::vector<at::Tensor>& outputs() const { return outputs_; }
  const std::vector<int64_t>& owners() const { return owners_; }
  const std::vector<int64_t>& versions() const { return versions_; }

  // The thread's current tape, or nullptr.
  static BaseOutputTape* Current();

 private:
  friend class ScopedBaseOutputTape;
  bool replaying_ = false;
  std::vector<at::Tensor> outputs_;
  std::vector<int64_t> owners_;
  std::vector<int64_t> versions_;
  size_t next_ = 0;
};

// Makes `tape` the thread's current tape for its lifetime (restores the previous one).
class ScopedBaseOutputTape {
 public:
  explicit ScopedBaseOutputTape(BaseOutputTape* tape);
  ~ScopedBaseOutputTape();
  ScopedBaseOutputTape(const ScopedBaseOutputTape&) = delete;
  ScopedBaseOutputTape& operator=(const ScopedBaseOutputTape&) = delete;

 private:
  BaseOutputTape* previous_;
};

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_BASE_OUTPUT_TAPE_H_
