#include "kernels/sgmv.h"

#include <cblas.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/matvec.h"
#include "kernels/parallel.h"

namespace qlorad::kernels {
namespace {

absl::Status CheckItem(const SgmvItem& item, size_t index) {
  if (item.x == nullptr || item.y == nullptr || item.a == nullptr || item.b == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("Sgmv: item ", index, " has a null pointer"));
  if (item.tokens <= 0 || item.rank <= 0 || item.rank > kSgmvMaxRank)
    return absl::InvalidArgumentError(absl::StrCat("Sgmv: item ", index, " has tokens ", item.tokens, ", rank ",
                                                   item.rank, " (rank must be in [1, ", kSgmvMaxRank, "])"));
  return absl::OkStatus();
}

// Scratch of one thread: t = s·x·Aᵀ [tokens, r] and, for decode-sized items, t·Bᵀ [tokens, out];
// kept for the thread's life (a few hundred KB at most at decode sizes).
struct Scratch {
  std::vector<float> low_rank, delta;
};

// t = x·Aᵀ [tokens, r]; y += s·t·Bᵀ. The items are the parallelism; calls this small stay on
// the calling thread in OpenBLAS (its threading starts at much larger sizes).
void RunItemBlas(const SgmvItem& item, int64_t in, int64_t out, Scratch& scratch) {
  const int m = static_cast<int>(item.tokens), r = static_cast<int>(item.rank);
  scratch.low_rank.resize(static_cast<size_t>(m) * r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r, static_cast<int>(in), 1.0f, item.x,
              static_cast<int>(in), item.a, static_cast<int>(in), 0.0f, scratch.low_rank.data(), r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<int>(out), r, item.scaling,
              scratch.low_rank.data(), r, item.b, r, 1.0f, item.y, static_cast<int>(out));
}

// Decode-sized items (tokens <= kMatvecMaxBatch) as two matvec passes (kernels/matvec.h), A's
// rows then B's, each read once in order for all of the item's tokens, instead of two OpenBLAS
// sgemm calls at one row each. B's rows are only rank floats long, so that pass is a dot product
// and a horizontal sum per output row (no software prefetch below 64 floats); sgmv_bench has it
// ahead of the sgemm pair all the same.
void RunItemMatvec(const SgmvItem& item, int64_t in, int64_t out, Scratch& scratch) {
  const int tokens = static_cast<int>(item.tokens);
  const int64_t r = item.rank;
  scratch.low_rank.resize(static_cast<size_t>(tokens * r));
  scratch.delta.resize(static_cast<size_t>(tokens * out));
  float* low_rank = scratch.low_rank.data();
  float* delta = scratch.delta.data();
  MatvecRows(item.a, in, in, item.x, in, tokens, nullptr, low_rank, r, 0, r);
  for (int64_t j = 0; j < tokens * r; ++j) low_rank[j] *= item.scaling;
  MatvecRows(item.b, r, r, low_rank, r, tokens, nullptr, delta, out, 0, out);
  for (int64_t j = 0; j < tokens * out; ++j) item.y[j] += delta[j];
}

void RunItem(const SgmvItem& item, int64_t in, int64_t out, Scratch& scratch) {
  if (item.tokens <= kMatvecMaxBatch) {
    RunItemMatvec(item, in, out, scratch);
  } else {
    RunItemBlas(item, in, out, scratch);
  }
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
