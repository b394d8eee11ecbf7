#include "kernels/sgmv.h"

#include <cblas.h>

#include <vector>

#include "absl/strings/str_cat.h"
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

// t = x·Aᵀ [tokens, r]; y += s·t·Bᵀ. The items are the parallelism; calls this small stay on
// the calling thread in OpenBLAS (its threading starts at much larger sizes).
void RunItem(const SgmvItem& item, int64_t in, int64_t out, std::vector<float>& t) {
  const int m = static_cast<int>(item.tokens), r = static_cast<int>(item.rank);
  t.resize(static_cast<size_t>(m) * r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r, static_cast<int>(in), 1.0f, item.x,
              static_cast<int>(in), item.a, static_cast<int>(in), 0.0f, t.data(), r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, static_cast<int>(out), r, item.scaling, t.data(), r, item.b, r,
              1.0f, item.y, static_cast<int>(out));
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
        std::vector<float> t;
        for (int64_t i = begin; i < end; ++i) RunItem(items[i], in_features, out_features, t);
      },
      /*helpers_linger=*/false);
  return absl::OkStatus();
}

}  // namespace qlorad::kernels
