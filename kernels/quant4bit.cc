// Argument checks, run-time ISA dispatch and threading of the 4-bit kernels.
#include "kernels/quant4bit.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_isa.h"
#include "kernels/internal/quant4bit_impl.h"
#include "kernels/parallel.h"

namespace qlorad::kernels {
namespace {

// Elements per parallel chunk: big enough to amortize a wake-up (~10 us).
constexpr int64_t kElementsPerChunk = 1 << 16;

template <typename In>
absl::Status QuantizeImpl(QuantType type, absl::Span<const In> x, int64_t blocksize,
                          absl::Span<uint8_t> packed, absl::Span<float> absmax) {
  const int64_t n = static_cast<int64_t>(x.size());
  if (n == 0) return absl::InvalidArgumentError("Quantize4bit: empty tensor (0 elements)");
  auto s = CheckBlocksize(blocksize);
  if (!s.ok()) return s;
  if (static_cast<int64_t>(packed.size()) != PackedBytes(n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Quantize4bit: packed output has ", packed.size(), " bytes, expected (n+1)/2 = ",
        PackedBytes(n), " for n = ", n));
  }
  const int64_t blocks = NumBlocks(n, blocksize);
  if (static_cast<int64_t>(absmax.size()) != blocks) {
    return absl::InvalidArgumentError(absl::StrCat("Quantize4bit: absmax has ", absmax.size(),
                                                   " values, expected ceil(", n, "/", blocksize,
                                                   ") = ", blocks));
  }
  const bool avx2 = internal::Avx2Enabled();
  ParallelFor(blocks, std::max<int64_t>(1, kElementsPerChunk / blocksize),
              [&](int64_t b0, int64_t b1) {
                if (avx2) {
                  internal::QuantizeBlocksAvx2(type, x.data(), n, blocksize, b0, b1,
                                               packed.data(), absmax.data());
                } else {
                  internal::QuantizeBlocksScalar(type, x.data(), n, blocksize, b0, b1,
                                                 packed.data(), absmax.data());
                }
              });
  return absl::OkStatus();
}

template <typename Out>
absl::Status DequantizeImpl(const Packed4bitView& w, int64_t begin, int64_t count,
                            absl::Span<Out> out) {
  auto s = w.Validate();
  if (!s.ok()) return s;
  if (begin < 0 || count < 0 || begin + count > w.numel) {
    return absl::InvalidArgumentError(absl::StrCat("Dequantize4bit: range [", begin, ", ",
                                                   begin + count, ") outside the tensor's ",
                                                   w.numel, " elements"));
  }
  if (static_cast<int64_t>(out.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat("Dequantize4bit: output has ", out.size(),
                                                   " values, expected ", count));
  }
  const bool avx2 = internal::Avx2Enabled();
  // Split on block boundaries (relative to the range start) so chunks are independent.
  const int64_t first_block = begin / w.blocksize;
  const int64_t last_block = count == 0 ? first_block : (begin + count - 1) / w.blocksize + 1;
  ParallelFor(last_block - first_block, std::max<int64_t>(1, kElementsPerChunk / w.blocksize),
              [&](int64_t c0, int64_t c1) {
                const int64_t e0 = std::max(begin, (first_block + c0) * w.blocksize);
                const int64_t e1 = std::min(begin + count, (first_block + c1) * w.blocksize);
                if (e0 >= e1) return;
                Out* dst = out.data() + (e0 - begin);
                if (avx2) {
                  internal::DequantizeRangeAvx2(w, e0, e1, dst);
                } else {
                  internal::DequantizeRangeScalar(w, e0, e1, dst);
                }
              });
  return absl::OkStatus();
}

}  // namespace

namespace internal {
bool Avx2Enabled() { return ActiveIsa() >= CpuIsa::kAvx2; }
}  // namespace internal

const char* QuantTypeName(QuantType type) { return type == QuantType::kNF4 ? "nf4" : "fp4"; }

absl::Status CheckBlocksize(int64_t blocksize) {
  if (blocksize < kMinBlocksize || blocksize > kMaxBlocksize || (blocksize & (blocksize - 1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("blocksize ", blocksize, " is not supported (hint: use a power of two in [",
                     kMinBlocksize, ", ", kMaxBlocksize, "]; bitsandbytes' default is 64)"));
  }
  return absl::OkStatus();
}

absl::Status Packed4bitView::Validate() const {
  auto s = CheckBlocksize(blocksize);
  if (!s.ok()) return s;
  if (numel <= 0) return absl::InvalidArgumentError("4-bit tensor: empty tensor (0 elements)");
  if (static_cast<int64_t>(packed.size()) != PackedBytes(numel)) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit tensor: packed data has ", packed.size(),
                                                   " bytes, expected (numel+1)/2 = ",
                                                   PackedBytes(numel), " for numel ", numel));
  }
  const int64_t blocks = NumBlocks(numel, blocksize);
  if (!scales.nested()) {
    if (static_cast<int64_t>(scales.absmax.size()) != blocks) {
      return absl::InvalidArgumentError(absl::StrCat("4-bit tensor: absmax has ",
                                                     scales.absmax.size(), " values, expected ",
                                                     blocks, " (numel ", numel, ", blocksize ",
                                                     blocksize, ")"));
    }
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(scales.codes.size()) != blocks) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit tensor: double-quantized absmax has ",
                                                   scales.codes.size(), " codes, expected ",
                                                   blocks));
  }
  if (scales.nested_blocksize <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("4-bit tensor: nested blocksize ", scales.nested_blocksize, " must be > 0"));
  }
  const int64_t nested = NumBlocks(blocks, scales.nested_blocksize);
  if (static_cast<int64_t>(scales.nested_absmax.size()) != nested) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit tensor: nested_absmax has ",
                                                   scales.nested_absmax.size(),
                                                   " values, expected ", nested));
  }
  if (scales.nested_code.size() != 256) {
    return absl::InvalidArgumentError(absl::StrCat("4-bit tensor: nested_quant_map has ",
                                                   scales.nested_code.size(),
                                                   " values, expected 256"));
  }
  return absl::OkStatus();
}

absl::Status Quantize4bit(QuantType type, absl::Span<const float> x, int64_t blocksize,
                          absl::Span<uint8_t> packed, absl::Span<float> absmax) {
  return QuantizeImpl(type, x, blocksize, packed, absmax);
}
absl::Status Quantize4bit(QuantType type, absl::Span<const uint16_t> x_bf16, int64_t blocksize,
                          absl::Span<uint8_t> packed, absl::Span<float> absmax) {
  return QuantizeImpl(type, x_bf16, blocksize, packed, absmax);
}

absl::Status Dequantize4bit(const Packed4bitView& w, int64_t begin, int64_t count,
                            absl::Span<float> out) {
  return DequantizeImpl(w, begin, count, out);
}
absl::Status Dequantize4bit(const Packed4bitView& w, int64_t begin, int64_t count,
                            absl::Span<uint16_t> out_bf16) {
  return DequantizeImpl(w, begin, count, out_bf16);
}

}  // namespace qlorad::kernels
