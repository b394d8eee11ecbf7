#include "core/service/audit.h"

#include "core/service/ids.h"
#include "core/store/audit_log.h"

namespace qlorad::service {

absl::Status Audit(store::SharedStore& db, const std::string& actor, const std::string& action,
                   const std::string& subject, const nlohmann::json& details) {
  return db.With([&](store::Store& s) -> absl::Status {
    store::AuditLog log(&s);
    store::AuditEntry entry;
    entry.at = Now();
    entry.actor = actor.empty() ? "system" : actor;
    entry.entity_type = subject.substr(0, subject.find(':'));
    entry.entity_id = subject.substr(subject.find(':') + 1);
    entry.action = action;
    entry.details = details;
    return log.Append(entry).status();
  });
}

}  // namespace qlorad::service
