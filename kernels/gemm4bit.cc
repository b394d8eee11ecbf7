// Checks, threading and shape dispatch of the fused 4-bit matmul (gemm4bit.h).
#include "kernels/gemm4bit.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_isa.h"
#include "kernels/internal/quant4bit_impl.h"
#include "kernels/parallel.h"

namespace qlorad::kernels {
namespace {

// Generic shapes: dequantize each row (any alignment) and take dot products.
void GemmRowsViaScratch(const Packed4bitView& w, int64_t in, const float* x, int64_t batch,
                        const float* bias, float* y, int64_t out, int64_t o0, int64_t o1,
                        bool avx2) {
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t o = o0; o < o1; ++o) {
    if (avx2) {
      internal::DequantizeRangeAvx2(w, o * in, (o + 1) * in, row.data());
    } else {
      internal::DequantizeRangeScalar(w, o * in, (o + 1) * in, row.data());
    }
    for (int64_t b = 0; b < batch; ++b) {
      const float* xr = x + b * in;
      float acc = 0.0f;
      for (int64_t i = 0; i < in; ++i) acc += row[i] * xr[i];
      y[b * out + o] = acc + (bias ? bias[o] : 0.0f);
    }
  }
}

// Weight rows [o0, o1) for every batch row, in tiles of up to kGemmTileRows batch rows
// (all accumulators stay in registers). packed_x: every tile of x packed in turn (PackX),
// tile b at packed_x + b * in.
void RunTiles(internal::GemmTileFn tile, const Packed4bitView& w, int64_t in,
              const float* packed_x, int64_t batch, const float* bias, float* y, int64_t ldy,
              int64_t o0, int64_t o1) {
  internal::GemmTile t;
  t.bias = bias;
  t.ldy = ldy;
  t.o0 = o0;
  t.o1 = o1;
  for (int64_t b = 0; b < batch; b += internal::kGemmTileRows) {
    t.nb = static_cast<int>(std::min<int64_t>(internal::kGemmTileRows, batch - b));
    t.x = packed_x + b * in;
    t.y = y + b * ldy;
    tile(w, in, t);
  }
}

// x ([batch, in], dense) in the tiles' layout for `isa` (quant4bit_impl.h, GemmTile),
// into packed (batch * in values).
void PackX(CpuIsa isa, const float* x, int64_t batch, int64_t in, float* packed) {
  for (int64_t b = 0; b < batch; b += internal::kGemmTileRows) {
    const int nb = static_cast<int>(std::min<int64_t>(internal::kGemmTileRows, batch - b));
    if (isa == CpuIsa::kAvx512) {
      internal::PackTileXAvx512(x + b * in, in, nb, in, packed + b * in);
    } else {
      internal::PackTileX(x + b * in, in, nb, in, packed + b * in);
    }
  }
}

internal::GemmTileFn TileFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return internal::GemmTileAvx512;
    case CpuIsa::kAvx2: return internal::GemmTileAvx2;
    case CpuIsa::kScalar: break;
  }
  return internal::GemmTileScalar;
}

}  // namespace

absl::Status Gemm4bit(const Packed4bitView& w, int64_t out_features, int64_t in_features,
                      absl::Span<const float> x, int64_t batch, absl::Span<const float> bias,
                      absl::Span<float> y) {
  auto s = w.Validate();
  if (!s.ok()) return s;
  if (out_features <= 0 || in_features <= 0 || out_features * in_features != w.numel) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm4bit: weight shape [", out_features, ", ",
                                                   in_features, "] does not match its ", w.numel,
                                                   " quantized elements"));
  }
  if (batch <= 0) return absl::InvalidArgumentError("Gemm4bit: empty input (batch 0)");
  if (static_cast<int64_t>(x.size()) != batch * in_features) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm4bit: input has ", x.size(),
                                                   " values, expected batch*in = ", batch, "*",
                                                   in_features));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != out_features) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm4bit: bias has ", bias.size(),
                                                   " values, expected ", out_features));
  }
  if (static_cast<int64_t>(y.size()) != batch * out_features) {
    return absl::InvalidArgumentError(absl::StrCat("Gemm4bit: output has ", y.size(),
                                                   " values, expected batch*out = ", batch, "*",
                                                   out_features));
  }
  const CpuIsa isa = ActiveIsa();
  const float* bias_ptr = bias.empty() ? nullptr : bias.data();
  // ~32K weights per chunk keeps the per-chunk overhead small.
  const int64_t grain = std::max<int64_t>(1, 32768 / in_features);
  if (in_features % w.blocksize != 0) {
    ParallelFor(out_features, grain, [&](int64_t o0, int64_t o1) {
      GemmRowsViaScratch(w, in_features, x.data(), batch, bias_ptr, y.data(), out_features, o0,
                         o1, isa >= CpuIsa::kAvx2);
    });
    return absl::OkStatus();
  }
  std::vector<float> packed_x(static_cast<size_t>(batch * in_features));
  const Gemm4bitInput input = PackGemm4bitInput(x.data(), batch, in_features, packed_x.data());
  // Threads take whole quads of rows, so the kernels can decode several rows together.
  ParallelFor((out_features + 3) / 4, (grain + 3) / 4, [&](int64_t q0, int64_t q1) {
    Gemm4bitRows(w, input, bias_ptr, y.data(), out_features, 4 * q0, std::min(out_features, 4 * q1));
  });
  return absl::OkStatus();
}

Gemm4bitInput PackGemm4bitInput(const float* x, int64_t batch, int64_t in, float* packed) {
  Gemm4bitInput input{ActiveIsa(), packed, batch, in};
  PackX(input.isa, x, batch, in, packed);
  return input;
}

void Gemm4bitRows(const Packed4bitView& w, const Gemm4bitInput& x, const float* bias, float* y, int64_t ldy,
                  int64_t o0, int64_t o1) {
  RunTiles(TileFor(x.isa), w, x.in, x.packed, x.batch, bias, y, ldy, o0, o1);
}

}  // namespace qlorad::kernels
