#include "kernels/sgmv.h"

#include <cblas.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/bf16.h"
#include "kernels/parallel.h"

namespace qlorad::kernels {
namespace {

absl::Status CheckItem(const SgmvItem& item, size_t index) {
  if (item.x == nullptr || item.y == nullptr || item.a == nullptr || item.b == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("Sgmv: item ", index, " has a null pointer"));
  if (item.factors != WeightFormat::kF32 && item.factors != WeightFormat::kBf16)
    return absl::InvalidArgumentError(absl::StrCat("Sgmv: item ", index, " has factors that are neither fp32 nor bf16"));
  if (item.tokens <= 0 || item.rank <= 0 || item.rank > kSgmvMaxRank)
    return absl::InvalidArgumentError(absl::StrCat("Sgmv: item ", index, " has tokens ", item.tokens, ", rank ",
                                                   item.rank, " (rank must be in [1, ", kSgmvMaxRank, "])"));
  return absl::OkStatus();
}

// Scratch of one thread: t = s·x·Aᵀ [tokens, r] and, for decode-sized items, t·Bᵀ [tokens, out];
// for longer items with bf16 factors, A and B widened to fp32. Kept for the thread's life.
struct Scratch {
  std::vector<float> low_rank, delta, a, b;
};

// The factor matrix as fp32: `data` itself for kF32, else widened into `wide`.
const float* FactorsAsF32(const void* data, int64_t count, WeightFormat format, std::vector<float>& wide) {
  if (format == WeightFormat::kF32) return static_cast<const float*>(data);
  const auto* bits = static_cast<const uint16_t*>(data);
  wide.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) wide[i] = Bf16ToFloat(bits[i]);
  return wide.data();
}

// SgmvItem::row_gain's rescale of the item's rows (after the delta is in y).
void ApplyRowGain(const SgmvItem& item, int64_t out) {
  if (item.row_gain == nullptr) return;
  for (int64_t t = 0; t < item.tokens; ++t) {
    float* y = item.y + t * out;
    for (int64_t o = 0; o < out; ++o) {
      const float b = item.bias != nullptr ? item.bias[o] : 0.0f;
      y[o] = item.row_gain[o] * (y[o] - b) + b;
    }
  }
}

// t = x·Aᵀ [tokens, r]; y += s·t·Bᵀ. The items are the parallelism; calls this small stay on
// the calling thread in OpenBLAS (its threading starts at much larger sizes).
void RunItemBlas(const SgmvItem& item, int64_t in, int64_t out, Scratch& scratch) {
  const int m = static_cast<int>(item.tokens), r = static_cast<int>(item.rank);
  const float* a = FactorsAsF32(item.a, item.rank * in, item.factors, scratch.a);
  const float* b = FactorsAsF32(item.b, out * item.rank, item.factors, scratch.b);
  scratch.low_rank.resize(static_cast<size_t>(m) * r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r, static_cast<int>(in), 1.0f, item.x,
              static_cast<int>(in), a, static_cast<int>(in), 0.0f, scratch.low_rank.data(), r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, item.b_transposed ? CblasNoTrans : CblasTrans, m, static_cast<int>(out), r,
              item.scaling, scratch.low_rank.data(), r, b, item.b_transposed ? static_cast<int>(out) : r, 1.0f, item.y,
              static_cast<int>(out));
}

// Decode-sized items (tokens <= kMatvecMaxBatch) as streaming passes (kernels/matvec.h) instead
// of two OpenBLAS sgemm calls at one row each: A's rows once for all of the item's tokens, then
// per token either Bᵀ's rank rows (WeightedRowSum; from L2 after the first token) or, for
// [out, rank] B, one rank-long dot product and horizontal sum per output row (sgmv_bench
// measures both).
void RunItemMatvec(const SgmvItem& item, int64_t in, int64_t out, Scratch& scratch) {
  const int tokens = static_cast<int>(item.tokens);
  const int64_t r = item.rank;
  scratch.low_rank.resize(static_cast<size_t>(tokens * r));
  scratch.delta.resize(static_cast<size_t>(tokens * out));
  float* low_rank = scratch.low_rank.data();
  float* delta = scratch.delta.data();
  MatvecRows(WeightMatrix{item.factors, item.a, in, in}, item.x, in, tokens, nullptr, low_rank, r, 0, r);
  for (int64_t j = 0; j < tokens * r; ++j) low_rank[j] *= item.scaling;
  if (item.b_transposed) {
    for (int t = 0; t < tokens; ++t)
      WeightedRowSum(WeightMatrix{item.factors, item.b, out, out}, r, low_rank + t * r, delta + t * out);
  } else {
    MatvecRows(WeightMatrix{item.factors, item.b, r, r}, low_rank, r, tokens, nullptr, delta, out, 0, out);
  }
  for (int64_t j = 0; j < tokens * out; ++j) item.y[j] += delta[j];
}

void RunItem(const SgmvItem& item, int64_t in, int64_t out, Scratch& scratch) {
  if (item.tokens <= kMatvecMaxBatch) {
    RunItemMatvec(item, in, out, scratch);
  } else {
    RunItemBlas(item, in, out, scratch);
  }
  ApplyRowGain(item, out);
}

}  // namespace

absl::Status SgmvF32(absl::Span<const SgmvItem> items, int64_t in_features, int64_t out_features) {
  if (in_features <= 0 || out_features <= 0) return absl::InvalidArgumentError("Sgmv: non-positive feature sizes");
  for (size_t i = 0; i < items.size(); ++i) {
    absl::Status ok = CheckItem(items[i], i);
    if (!ok.ok()) return ok;
  }
  // The serving engine calls this between OpenBLAS GEMMs: helpers must not linger.
  ParallelFor(
      static_cast<int64_t>(items.size()), 1,
      [&](int64_t begin, int64_t end) {
        thread_local Scratch scratch;
        for (int64_t i = begin; i < end; ++i) RunItem(items[i], in_features, out_features, scratch);
      },
      /*helpers_linger=*/false);
  return absl::OkStatus();
}

}  // namespace qlorad::kernels
