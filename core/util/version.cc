#include "core/util/version.h"

#ifndef QLORAD_VERSION
#error "QLORAD_VERSION must be defined by the build (CMake project(VERSION))"
#endif

namespace qlorad {

const char* QloradVersion() { return QLORAD_VERSION; }

}  // namespace qlorad
