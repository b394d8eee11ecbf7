// One audit entry for a service action that is not an adapter transition (datasets,
// jobs, evaluations, exports; adapter transitions are audited by core/store's
// AdapterStore inside their own transaction). `subject` is "type:id"; an empty actor is
// "system".
#ifndef QLORAD_CORE_SERVICE_AUDIT_H_
#define QLORAD_CORE_SERVICE_AUDIT_H_

#include <string>

#include "absl/status/status.h"
#include "core/store/shared_store.h"
#include "nlohmann/json.hpp"

namespace qlorad::service {

absl::Status Audit(store::SharedStore& db, const std::string& actor, const std::string& action,
                   const std::string& subject, const nlohmann::json& details);

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_AUDIT_H_
