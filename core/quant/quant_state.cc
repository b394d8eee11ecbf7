// Quant4bitState: validation, quantization and (range) dequantization of tensors.
#include "core/quant/quant_state.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "kernels/blockwise8bit.h"
#include "kernels/quant_tables.h"

#if defined(QLORAD_QUANT_WITH_CUDA)
#include <ATen/cuda/CUDAContext.h>

#include "kernels/cuda/quant4bit_cuda.h"
#endif

namespace qlorad {
namespace {

absl::Status CheckTensor(const at::Tensor& t, const char* name, at::ScalarType dtype,
                         int64_t numel, at::Device device) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat("4-bit state: ", name, " is missing"));
  if (t.scalar_type() != dtype) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit state: ", name, " has dtype ",
                                                   c10::toString(t.scalar_type()), ", expected ",
                                                   c10::toString(dtype)));
  }
  if (t.numel() != numel) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit state: ", name, " has ", t.numel(),
                                                   " elements, expected ", numel));
  }
  if (!t.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit state: ", name, " is not contiguous"));
  }
  if (t.device() != device) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit state: ", name, " is on ",
                                                   t.device().str(), " but the packed data on ",
                                                   device.str()));
  }
  return absl::OkStatus();
}

const float* CodeBook(kernels::QuantType type) {
  return type == kernels::QuantType::kNF4 ? kernels::kNf4Code : kernels::kFp4Code;
}

at::Tensor TableTensor(const float* values, int64_t n) {
  return at::from_blob(const_cast<float*>(values), {n}, at::kFloat).clone();
}

bool IsSupportedFloat(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}

}  // namespace

int64_t Quant4bitState::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::Status Quant4bitState::Validate(bool check_code_book) const {
  QLORAD_RETURN_IF_ERROR(kernels::CheckBlocksize(blocksize));
  if (shape.empty() || numel() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit state: empty shape [",
                                                   absl::StrJoin(shape, ", "), "]"));
  }
  if (!packed.defined()) return absl::InvalidArgumentError("4-bit state: packed weight is missing");
  const at::Device dev = packed.device();
  const int64_t n = numel();
  const int64_t blocks = kernels::NumBlocks(n, blocksize);
  QLORAD_RETURN_IF_ERROR(CheckTensor(packed, "weight (packed)", at::kByte, kernels::PackedBytes(n), dev));
  QLORAD_RETURN_IF_ERROR(CheckTensor(quant_map, "quant_map", at::kFloat, 16, dev));
  if (check_code_book && !at::equal(quant_map.cpu(), TableTensor(CodeBook(quant_type), 16))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "4-bit state: quant_map is not bitsandbytes' ", kernels::QuantTypeName(quant_type),
        " code book (hint: quant_type and quant_map disagree)"));
  }
  if (!nested()) return CheckTensor(absmax, "absmax", at::kFloat, blocks, dev);
  QLORAD_RETURN_IF_ERROR(CheckTensor(absmax, "absmax (double-quantized codes)", at::kByte, blocks, dev));
  if (nested_blocksize <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit state: nested_blocksize ", nested_blocksize));
  }
  QLORAD_RETURN_IF_ERROR(CheckTensor(nested_absmax, "nested_absmax", at::kFloat,
                                     kernels::NumBlocks(blocks, nested_blocksize), dev));
  return CheckTensor(nested_quant_map, "nested_quant_map", at::kFloat, 256, dev);
}

int64_t Quant4bitState::StorageBytes() const {
  int64_t bytes = 0;
  for (const at::Tensor* t : {&packed, &absmax, &quant_map, &nested_absmax, &nested_quant_map}) {
    if (t->defined()) bytes += t->numel() * static_cast<int64_t>(t->element_size());
  }
  return bytes + static_cast<int64_t>(sizeof(nested_offset));
}

Quant4bitState Quant4bitState::To(at::Device device) const {
  Quant4bitState s = *this;
  for (at::Tensor* t : {&s.packed, &s.absmax, &s.quant_map, &s.nested_absmax, &s.nested_quant_map}) {
    if (t->defined()) *t = t->to(device);
  }
  return s;
}

#if defined(QLORAD_QUANT_WITH_CUDA)
kernels::cuda::DeviceWeight4bit MakeDeviceView(const Quant4bitState& state) {
  kernels::cuda::DeviceWeight4bit w;
  w.fp4 = state.quant_type == kernels::QuantType::kFP4;
  w.packed = state.packed.data_ptr<uint8_t>();
  w.numel = state.numel();
  w.blocksize = state.blocksize;
  if (state.nested()) {
    w.scales.codes = state.absmax.data_ptr<uint8_t>();
    w.scales.nested_absmax = state.nested_absmax.data_ptr<float>();
    w.scales.nested_code = state.nested_quant_map.data_ptr<float>();
    w.scales.offset = state.nested_offset;
    w.scales.nested_blocksize = state.nested_blocksize;
  } else {
    w.scales.absmax = state.absmax.data_ptr<float>();
  }
  return w;
}
#endif

kernels::Packed4bitView MakeView(const Quant4bitState& state) {
  kernels::Packed4bitView v;
  v.type = state.quant_type;
  v.numel = state.numel();
  v.blocksize = state.blocksize;
  v.packed = absl::MakeConstSpan(state.packed.data_ptr<uint8_t>(), state.packed.numel());
  if (state.nested()) {
    v.scales.codes = absl::MakeConstSpan(state.absmax.data_ptr<uint8_t>(), state.absmax.numel());
    v.scales.nested_absmax =
        absl::MakeConstSpan(state.nested_absmax.data_ptr<float>(), state.nested_absmax.numel());
    v.scales.nested_code = absl::MakeConstSpan(state.nested_quant_map.data_ptr<float>(), 256);
    v.scales.offset = state.nested_offset;
    v.scales.nested_blocksize = state.nested_blocksize;
  } else {
    v.scales.absmax = absl::MakeConstSpan(state.absmax.data_ptr<float>(), state.absmax.numel());
  }
  return v;
}

QuantOptions OptionsOf(const Quant4bitState& state) {
  QuantOptions options;
  options.quant_type = state.quant_type;
  options.blocksize = state.blocksize;
  options.double_quant = state.nested();
  options.nested_blocksize = state.nested_blocksize;
  return options;
}

absl::StatusOr<Quant4bitState> Quantize4bitTensor(const at::Tensor& w, const QuantOptions& options) {
  if (!w.defined() || w.numel() == 0) {
    return absl::InvalidArgumentError("Quantize4bitTensor: empty tensor (nothing to quantize)");
  }
  if (!IsSupportedFloat(w.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Quantize4bitTensor: dtype ", c10::toString(w.scalar_type()),
        " is not supported (hint: quantize float32, bfloat16, float16 or float64 weights)"));
  }
  if (!w.is_contiguous()) {
    return absl::InvalidArgumentError(
        "Quantize4bitTensor: tensor is not contiguous (hint: call .contiguous() first; the "
        "packed layout follows the row-major flattened tensor)");
  }
  QLORAD_RETURN_IF_ERROR(kernels::CheckBlocksize(options.blocksize));
  if (options.double_quant) QLORAD_RETURN_IF_ERROR(kernels::CheckBlocksize(options.nested_blocksize));
  return CatchTorchErrors("Quantize4bitTensor", [&]() -> absl::StatusOr<Quant4bitState> {
    Quant4bitState s;
    s.quant_type = options.quant_type;
    s.blocksize = options.blocksize;
    s.shape.assign(w.sizes().begin(), w.sizes().end());
    s.dtype = w.scalar_type();
    const int64_t n = w.numel();
    const int64_t blocks = kernels::NumBlocks(n, options.blocksize);
    // bf16 is quantized in place; other dtypes through an exact (or, for fp64, the
    // bitsandbytes-equivalent) conversion to fp32.
    at::Tensor src = w.cpu();
    s.packed = at::empty({kernels::PackedBytes(n)}, at::kByte);
    at::Tensor absmax = at::empty({blocks}, at::kFloat);
    auto packed_span = absl::MakeSpan(s.packed.data_ptr<uint8_t>(), s.packed.numel());
    auto absmax_span = absl::MakeSpan(absmax.data_ptr<float>(), blocks);
    if (src.scalar_type() == at::kBFloat16) {
      const auto* p = reinterpret_cast<const uint16_t*>(src.data_ptr<at::BFloat16>());
      QLORAD_RETURN_IF_ERROR(kernels::Quantize4bit(options.quant_type, absl::MakeConstSpan(p, n),
                                                   options.blocksize, packed_span, absmax_span));
    } else {
      src = src.to(at::kFloat).contiguous();
      QLORAD_RETURN_IF_ERROR(kernels::Quantize4bit(options.quant_type,
                                                   absl::MakeConstSpan(src.data_ptr<float>(), n),
                                                   options.blocksize, packed_span, absmax_span));
    }
    s.quant_map = TableTensor(CodeBook(options.quant_type), 16);
    if (options.double_quant) {
      s.nested_blocksize = options.nested_blocksize;
      s.absmax = at::empty({blocks}, at::kByte);
      s.nested_absmax = at::empty({kernels::NumBlocks(blocks, options.nested_blocksize)}, at::kFloat);
      s.nested_quant_map = TableTensor(kernels::kDynamicMapSigned, 256);
      QLORAD_ASSIGN_OR_RETURN(
          s.nested_offset,
          kernels::DoubleQuantizeAbsmax(
              absmax_span, options.nested_blocksize, absl::MakeConstSpan(kernels::kDynamicMapSigned, 256),
              absl::MakeSpan(s.absmax.data_ptr<uint8_t>(), blocks),
              absl::MakeSpan(s.nested_absmax.data_ptr<float>(), s.nested_absmax.numel())));
    } else {
      s.absmax = absmax;
    }
    if (!w.device().is_cpu()) s = s.To(w.device());
    return s;
  });
}

absl::StatusOr<at::Tensor> Dequantize4bitRange(const Quant4bitState& state, int64_t begin,
                                               int64_t count, at::ScalarType dtype) {
  QLORAD_RETURN_IF_ERROR(state.Validate(/*check_code_book=*/false));
  if (!IsSupportedFloat(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("Dequantize4bit: output dtype ",
                                                   c10::toString(dtype), " is not floating point"));
  }
  if (begin < 0 || count < 0 || begin + count > state.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("Dequantize4bit: range [", begin, ", ", begin + count,
                                                   ") outside ", state.numel(), " elements"));
  }
  return CatchTorchErrors("Dequantize4bit", [&]() -> absl::StatusOr<at::Tensor> {
    const at::ScalarType kernel_dtype = dtype == at::kBFloat16 ? at::kBFloat16 : at::kFloat;
#if defined(QLORAD_QUANT_WITH_CUDA)
    if (state.device().is_cuda()) {
      const kernels::cuda::DeviceWeight4bit w = MakeDeviceView(state);
      at::Tensor full = at::empty({w.numel}, state.packed.options().dtype(kernel_dtype));
      void* stream = at::cuda::getCurrentCUDAStream().stream();
      const char* err = kernel_dtype == at::kBFloat16
          ? kernels::cuda::Dequantize4bitBf16(
                w, reinterpret_cast<uint16_t*>(full.data_ptr<at::BFloat16>()), stream)
          : kernels::cuda::Dequantize4bitF32(w, full.data_ptr<float>(), stream);
      if (err != nullptr) return absl::InternalError(absl::StrCat("Dequantize4bit (CUDA): ", err));
      return full.narrow(0, begin, count).to(dtype);
    }
#endif
    // CPU kernels; state tensors on another device are brought to the CPU first.
    const Quant4bitState cpu = state.device().is_cpu() ? state : state.To(at::kCPU);
    at::Tensor out = at::empty({count}, at::TensorOptions().dtype(kernel_dtype));
    const kernels::Packed4bitView view = MakeView(cpu);
    if (kernel_dtype == at::kBFloat16) {
      auto* p = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
      QLORAD_RETURN_IF_ERROR(kernels::Dequantize4bit(view, begin, count, absl::MakeSpan(p, count)));
    } else {
      QLORAD_RETURN_IF_ERROR(
          kernels::Dequantize4bit(view, begin, count, absl::MakeSpan(out.data_ptr<float>(), count)));
    }
    if (dtype != kernel_dtype) out = out.to(dtype);
    return state.device().is_cpu() ? out : out.to(state.device());
  });
}

absl::StatusOr<at::Tensor> Dequantize4bitTensor(const Quant4bitState& state, at::ScalarType dtype) {
  QLORAD_ASSIGN_OR_RETURN(at::Tensor flat, Dequantize4bitRange(state, 0, state.numel(), dtype));
  return flat.view(state.shape);
}

}  // namespace qlorad
