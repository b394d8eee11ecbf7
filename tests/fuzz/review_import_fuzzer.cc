// Fuzzes the import of human review ratings (CSV and JSONL, blind and unblinded
// samples). Invariants for an accepted import: every rating names an item of the
// sample, its ratings lie on the sample's scale (or are 0 = not rated), and the
// summary (win rate, agreement) can be computed.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "core/eval/review.h"

namespace {

qlorad::eval::ReviewSample MakeSample(bool blind) {
  qlorad::eval::ReviewSample sample;
  for (const char* id : {"item-1", "item-2", "item-3", "42"}) {
    sample.items.push_back({id, std::string("input of ") + id, "ref", "base out", "adapter out"});
    sample.a_is_adapter[id] = (id[0] == 'i');
  }
  sample.blind = blind;
  sample.scale_min = 1;
  sample.scale_max = 5;
  return sample;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const qlorad::eval::ReviewSample sample = MakeSample((data[0] & 1) != 0);
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto ratings = (data[0] & 2) ? qlorad::eval::ImportRatingsJsonl(sample, "fuzz-reviewer", text)
                               : qlorad::eval::ImportRatingsCsv(sample, "fuzz-reviewer", text);
  if (!ratings.ok()) return 0;
  std::set<std::string> ids;
  for (const auto& item : sample.items) ids.insert(item.id);
  for (const auto& r : *ratings) {
    if (!ids.count(r.item_id)) std::abort();
    for (int v : {r.baseline_rating, r.adapter_rating}) {
      if (v != 0 && (v < sample.scale_min || v > sample.scale_max)) std::abort();
    }
  }
  (void)qlorad::eval::SummariseReview(*ratings);
  return 0;
}
