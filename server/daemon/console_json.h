// JSON shapes of the review console's API (server/daemon/console_api.h): service structs
// to JSON and request bodies to service structs. Torch-free, no HTTP.
#ifndef QLORAD_SERVER_DAEMON_CONSOLE_JSON_H_
#define QLORAD_SERVER_DAEMON_CONSOLE_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/service/service_core.h"
#include "nlohmann/json.hpp"

namespace qlorad::server {

nlohmann::json QueueEntryToJson(const service::ReviewQueueEntry& e);
nlohmann::json ReviewSessionToJson(const service::ReviewSessionInfo& s);
nlohmann::json AdapterToJson(const service::AdapterInfo& a);
// The evaluation for the adapter page: the numbers, the classification reports (with
// the confusion matrices), the review summary; without the per-example outputs.
nlohmann::json EvaluationSummaryToJson(const service::EvaluationInfo& e);
nlohmann::json PromotionCheckToJson(const service::PromotionCheck& c);

// Request bodies. INVALID_ARGUMENT naming the field ("body.rating_a: ...").
absl::StatusOr<service::ItemJudgement> JudgementFromJson(const std::string& body, const std::string& item_id);
absl::StatusOr<service::DecisionInput> DecisionFromJson(const std::string& body, const std::string& actor);

}  // namespace qlorad::server

#endif  // QLORAD_SERVER_DAEMON_CONSOLE_JSON_H_
