#include "core/util/training_random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/detail/CUDAHooksInterface.h>

namespace qlorad {
namespace {

struct Scope {
  at::Generator generator;
  BatchShard shard;
};

thread_local const Scope* current_scope = nullptr;

at::Generator DefaultGeneratorOf(const c10::Device& device) {
  if (device.is_cuda()) return at::detail::getCUDAHooks().getDefaultCUDAGenerator(device.index());
  return at::detail::getDefaultCPUGenerator();
}

}  // namespace

ScopedTrainingRandom::ScopedTrainingRandom(at::Generator generator, BatchShard shard) : previous_(current_scope) {
  current_scope = new Scope{std::move(generator), shard};
}

ScopedTrainingRandom::~ScopedTrainingRandom() {
  delete current_scope;
  current_scope = static_cast<const Scope*>(previous_);
}

at::Generator MakeSeededGenerator(const c10::Device& device, uint64_t seed) {
  at::Generator generator = DefaultGeneratorOf(device).clone();
  generator.set_current_seed(seed);
  return generator;
}

at::Generator TrainingGenerator(const c10::Device& device) {
  if (current_scope != nullptr && current_scope->generator.device().type() == device.type())
    return current_scope->generator;
  return DefaultGeneratorOf(device);
}

at::Tensor ShardInvariantDropout(const at::Tensor& x, double p, bool train) {
  if (!train || p <= 0.0) return x;
  at::Generator generator = TrainingGenerator(x.device());
  at::Tensor mask;
  const Scope* scope = current_scope;
  if (scope != nullptr && x.dim() == 3 && scope->shard.token_index.defined() && x.size(0) == 1 &&
      x.size(1) == scope->shard.token_index.numel()) {
    const BatchShard& s = scope->shard;
    mask = at::empty({s.global_rows * s.global_len, x.size(2)}, x.options())
               .bernoulli_(1.0 - p, generator)
               .index_select(0, s.token_index.to(x.device()))
               .unsqueeze(0);
  } else if (scope != nullptr && x.dim() == 3 && !scope->shard.token_index.defined() &&
             scope->shard.global_rows >= scope->shard.row_offset + x.size(0) && scope->shard.global_len >= x.size(1)) {
    const BatchShard& s = scope->shard;
    mask = at::empty({s.global_rows, s.global_len, x.size(2)}, x.options())
               .bernoulli_(1.0 - p, generator)
               .narrow(0, s.row_offset, x.size(0))
               .narrow(1, 0, x.size(1));
  } else {
    mask = at::empty_like(x).bernoulli_(1.0 - p, generator);
  }
  return x.mul(mask).mul(1.0 / (1.0 - p));
}

}  // namespace qlorad
