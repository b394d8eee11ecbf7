// The qlorad release version, from CMake's project(VERSION) (one source for build_info,
// run records and merge records).
#ifndef QLORAD_CORE_UTIL_VERSION_H_
#define QLORAD_CORE_UTIL_VERSION_H_

namespace qlorad {

// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
const char* QloradVersion();

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_VERSION_H_
