// A 4-bit (NF4/FP4) quantized tensor held as libtorch tensors in bitsandbytes' layout,
// so checkpoints of `*-bnb-4bit` models map onto it one tensor per field:
//   W.weight                 -> packed            uint8 [(n+1)/2]
//   W.weight.absmax          -> absmax            float32 [blocks], or uint8 codes when nested
//   W.weight.quant_map       -> quant_map         float32 [16]
//   W.weight.nested_absmax   -> nested_absmax     float32 [ceil(blocks/256)]
//   W.weight.nested_quant_map-> nested_quant_map  float32 [256]
//   quant_state JSON         -> quant_type, blocksize, dtype, shape, nested_blocksize,
//                               nested_offset (nested_dtype is always float32)
// The tensors may live on any device (they move with the owning module); CPU kernels
// read them through MakeView.
#ifndef QLORAD_CORE_QUANT_QUANT_STATE_H_
#define QLORAD_CORE_QUANT_QUANT_STATE_H_

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "kernels/quant4bit.h"
#if defined(QLORAD_QUANT_WITH_CUDA)
#include "kernels/cuda/quant4bit_cuda.h"
#endif

namespace qlorad {

struct QuantOptions {
  kernels::QuantType quant_type = kernels::QuantType::kNF4;  // qlorad defaults to NF4
  int64_t blocksize = kernels::kDefaultBlocksize;             // 64
  bool double_quant = true;  // bnb_4bit_use_double_quant (QLoRA's setting)
  int64_t nested_blocksize = kernels::kNestedBlocksize;       // 256
};

struct Quant4bitState {
  kernels::QuantType quant_type = kernels::QuantType::kNF4;
  int64_t blocksize = kernels::kDefaultBlocksize;
  std::vector<int64_t> shape;                 // the original tensor's shape
  at::ScalarType dtype = at::kFloat;          // the original tensor's dtype
  at::Tensor packed;                          // uint8 [(numel+1)/2]
  at::Tensor absmax;                          // float32 [blocks] or uint8 [blocks] (nested)
  at::Tensor quant_map;                       // float32 [16] (the code book)
  at::Tensor nested_absmax;                   // nested only: float32
  at::Tensor nested_quant_map;                // nested only: float32 [256]
  float nested_offset = 0.0f;                 // nested only
  int64_t nested_blocksize = kernels::kNestedBlocksize;

  bool nested() const { return nested_absmax.defined(); }
  int64_t numel() const;
  at::Device device() const { return packed.device(); }
  // Checks dtypes, sizes, contiguity, one device, blocksize, and that quant_map equals
  // the code book of quant_type (a foreign code book would be silently ignored otherwise;
  // check_code_book = false skips that device-to-host read on hot paths).
  absl::Status Validate(bool check_code_book = true) const;
  // Bytes held by all tensors of the state (what "bytes per parameter" counts).
  int64_t StorageBytes() const;
  // A copy with every tensor on `device`.
  Quant4bitState To(at::Device device) const;
};

// The options that reproduce `state`'s layout (type, block sizes, double quant).
QuantOptions OptionsOf(const Quant4bitState& state);

// Quantizes a contiguous floating-point tensor (fp32, bf16, fp16, fp64; any device, computed
// on the CPU, result on the input's device). INVALID_ARGUMENT for an empty, non-contiguous or
// non-floating tensor, or a bad blocksize.
absl::StatusOr<Quant4bitState> Quantize4bitTensor(const at::Tensor& w, const QuantOptions& options);

// Elements [begin, begin + count) of the flattened tensor, dequantized to `dtype`
// (fp32/bf16 directly, other floating types through fp32) on the state's device.
absl::StatusOr<at::Tensor> Dequantize4bitRange(const Quant4bitState& state, int64_t begin,
                                               int64_t count, at::ScalarType dtype);
// The whole tensor in its original shape.
absl::StatusOr<at::Tensor> Dequantize4bitTensor(const Quant4bitState& state, at::ScalarType dtype);

// Read-only kernel view of a CPU state (tensors must be on the CPU; Validate first).
kernels::Packed4bitView MakeView(const Quant4bitState& state);

#if defined(QLORAD_QUANT_WITH_CUDA)  // defined only inside qlorad_quant's CUDA build
// The CUDA kernels' view of a state whose tensors are on one CUDA device (Validate first).
kernels::cuda::DeviceWeight4bit MakeDeviceView(const Quant4bitState& state);
#endif

}  // namespace qlorad

#endif  // QLORAD_CORE_QUANT_QUANT_STATE_H_
