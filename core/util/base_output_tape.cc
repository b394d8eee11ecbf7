#include "core/util/base_output_tape.h"

#include <utility>

#include <c10/util/Exception.h>

namespace qlorad {
namespace {

thread_local BaseOutputTape* current_tape = nullptr;

}  // namespace

BaseOutputTape::BaseOutputTape(std::vector<at::Tensor> outputs, std::vector<int64_t> owners,
                               std::vector<int64_t> versions)
    : replaying_(true), outputs_(std::move(outputs)), owners_(std::move(owners)), versions_(std::move(versions)) {
  TORCH_CHECK(outputs_.size() == owners_.size() && outputs_.size() == versions_.size(), "BaseOutputTape: ",
              outputs_.size(), " outputs for ", owners_.size(), " owners and ", versions_.size(), " versions");
}

void BaseOutputTape::Record(const void* owner, const at::Tensor& output) {
  TORCH_CHECK(!replaying_, "BaseOutputTape: Record on a replaying tape");
  outputs_.push_back(output);
  owners_.push_back(reinterpret_cast<int64_t>(owner));
  versions_.push_back(static_cast<int64_t>(output._version()));
}

at::Tensor BaseOutputTape::Next(const void* owner) {
  TORCH_CHECK(replaying_, "BaseOutputTape: Next on a recording tape");
  TORCH_CHECK(next_ < outputs_.size(), "BaseOutputTape: the recompute asked for base output ", next_ + 1, " of ",
              outputs_.size(), " recorded (it took another path than the forward)");
  TORCH_CHECK(owners_[next_] == reinterpret_cast<int64_t>(owner), "BaseOutputTape: base output ", next_ + 1,
              " was recorded by another layer (the recompute took another path than the forward)");
  TORCH_CHECK(static_cast<int64_t>(outputs_[next_]._version()) == versions_[next_], "BaseOutputTape: base output ",
              next_ + 1, " was modified in place after the forward recorded it");
  return outputs_[next_++];
}

BaseOutputTape* BaseOutputTape::Current() { return current_tape; }

ScopedBaseOutputTape::ScopedBaseOutputTape(BaseOutputTape* tape) : previous_(current_tape) { current_tape = tape; }

ScopedBaseOutputTape::~ScopedBaseOutputTape() { current_tape = previous_; }

}  // namespace qlorad
