// Training randomness that is a pure function of the run, not of the process or of
// how a global batch is split across data-parallel ranks.
//
// The trainer installs a ScopedTrainingRandom on its thread for every micro-batch: a
// generator owned by the run (never the process-wide default, so concurrent jobs in one
// daemon do not perturb each other) and the place of this rank's rows in the global
// batch. ShardInvariantDropout then draws the mask for the whole global batch
// [global_rows, global_len, features] and keeps this shard's rows and positions, so a
// token's mask is the same whether it is trained by 1 rank or by N.
#ifndef QLORAD_CORE_UTIL_TRAINING_RANDOM_H_
#define QLORAD_CORE_UTIL_TRAINING_RANDOM_H_

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace qlorad {

// Where a [rows, len, ...] micro-batch sits in its global batch.
struct BatchShard {
  int64_t global_rows = 0;  // rows of the global batch (all ranks)
  int64_t row_offset = 0;   // this shard's first row in it
  int64_t global_len = 0;   // the global batch's padded length (>= this shard's)
  // Optional, for a shard laid out as one row [1, N] (padding-free packing): each of its
  // tokens' flat index into the global [global_rows, global_len] grid; row_offset unused.
  at::Tensor token_index = {};
};

// Installs `generator` and `shard` for this thread until destruction (nestable: the
// previous scope comes back).
class ScopedTrainingRandom {
 public:
  ScopedTrainingRandom(at::Generator generator, BatchShard shard);
  ~ScopedTrainingRandom();
  ScopedTrainingRandom(const ScopedTrainingRandom&) = delete;
  ScopedTrainingRandom& operator=(const ScopedTrainingRandom&) = delete;

 private:
  const void* previous_;
};

// A fresh generator of `device`'s type seeded with `seed` (independent of the default one).
at::Generator MakeSeededGenerator(const c10::Device& device, uint64_t seed);

// The generator installed on this thread, else `device`'s default generator. Gradient
// checkpointing saves and replays this generator's state.
at::Generator TrainingGenerator(const c10::Device& device);

// Inverted dropout of `x` (identity when !train or p == 0). With a scope installed and a
// 3-D x [rows, len, features] the mask is drawn as described above; otherwise from
// TrainingGenerator(x.device()) over x's own shape.
at::Tensor ShardInvariantDropout(const at::Tensor& x, double p, bool train);

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_TRAINING_RANDOM_H_
