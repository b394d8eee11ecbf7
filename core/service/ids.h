// Time stamps and ids of the service core: Now() is RFC 3339 UTC with milliseconds;
// NewId("job") is "job-YYYYMMDDHHMMSS-xxxx", unique within the process.
#ifndef QLORAD_CORE_SERVICE_IDS_H_
#define QLORAD_CORE_SERVICE_IDS_H_

#include <string>

namespace qlorad::service {

std::string Now();
std::string NewId(const std::string& prefix);

}  // namespace qlorad::service

#endif  // QLORAD_CORE_SERVICE_IDS_H_
