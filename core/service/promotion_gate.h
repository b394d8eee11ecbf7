// PromotionGate: the adapter CI gate of Promote (see PromotionCheck in service_core.h).
//
// Contract for Check(candidate, alias):
//  * The alias serves nothing, or already serves the candidate: the gate does not apply
//    (passed). The serving version has no evaluation: does not apply either (there is
//    nothing to be worse than; the message says so).
//  * Otherwise it applies. The serving version's evaluations are tried newest first; for
//    each, the candidate's newest evaluation comparable with it (same hold-out, base and
//    settings: core/eval/promotion_comparison.h) is compared by the paired bootstrap.
//    None comparable: refused, naming the dataset and settings to evaluate on.
//    Compared: refused when the interval's lower bound of (candidate − serving) is below
//    −margin. An equal-or-better candidate passes.
//  * message: one line with both values, the delta, its 95 % interval and the margin.
// Nothing is changed; Promote (core_impl) moves the alias only if the alias still points
// where the check saw it (store::PromoteGuard), recording the verdict in its audit entry.
#ifndef QLORAD_CORE_SERVICE_PROMOTION_GATE_H_
#define QLORAD_CORE_SERVICE_PROMOTION_GATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/evaluation_record.h"
#include "core/service/service_core.h"
#include "core/store/adapter_store.h"
#include "core/store/shared_store.h"
#include "nlohmann/json.hpp"

namespace qlorad::service {

class PromotionGate {
 public:
  // Both pointers must outlive the gate. margin >= 0.
  PromotionGate(store::SharedStore* db, store::AdapterStore* adapters, double margin)
      : db_(db), adapters_(adapters), margin_(margin) {}

  absl::StatusOr<PromotionCheck> Check(const std::string& candidate_id, const std::string& alias);

 private:
  // The adapter's stored evaluation records, newest first.
  absl::StatusOr<std::vector<eval::EvaluationRecord>> RecordsOf(const std::string& adapter_id);
  void Compare(const std::vector<eval::EvaluationRecord>& candidate, const std::vector<eval::EvaluationRecord>& serving,
               PromotionCheck* check);

  store::SharedStore* db_;
  store::AdapterStore* adapters_;
  double margin_;
};

// The verdict as stored in the promote's audit entry and shown by clients.
nlohmann::json PromotionCheckToJson(const PromotionCheck& check);

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_PROMOTION_GATE_H_
