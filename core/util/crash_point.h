// Test-only crash points: a named place in the code where a crash-consistency test can
// have the process SIGKILLed, to prove that what is on disk is consistent whatever
// instant the process dies at. Inert in production.
//
// Environment (read once, at the first CrashPoint call of the process; TEST USE ONLY —
// never set these on a daemon that holds data you care about):
//  * QLORAD_TEST_CRASH_AT=<point>:<n>  raise(SIGKILL) at the n-th hit (n >= 1) of the
//    point named <point>, or of any point when <point> is "*" (hits of all points are
//    counted together). E.g. "store.commit:7" kills the process just before its 7th
//    SQLite commit (core/store/store.cc), so commits 1..6 are on disk and the 7th is not.
//  * QLORAD_TEST_CRASH_TRACE=<file>  appends "<n> <point>\n" for every hit (n counts the
//    hits of all points, from 1), written with one write(2) so a SIGKILL loses no line;
//    a test uses it to map the n of QLORAD_TEST_CRASH_AT to the operation that ran.
// A malformed QLORAD_TEST_CRASH_AT (or an unwritable trace file) is reported on stderr
// and aborts the process: a crash test must not pass because its hook was ignored.
// When neither variable is set, CrashPoint costs one relaxed atomic load.
//
// Points in the tree: "store.commit" (every SQLite transaction commit, explicit or
// autocommit, through sqlite3_commit_hook in core/store/store.cc).
#ifndef QLORAD_CORE_UTIL_CRASH_POINT_H_
#define QLORAD_CORE_UTIL_CRASH_POINT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace qlorad {

struct CrashSpec {
  std::string point;  // a point name, or "*" for any point
  int64_t hit = 0;    // >= 1
};

// Parses "<point>:<n>" (QLORAD_TEST_CRASH_AT's syntax). INVALID_ARGUMENT naming the
// variable and what is wrong (no ':', empty point, n not a positive integer).
absl::StatusOr<CrashSpec> ParseCrashSpec(const std::string& text);

// Marks the crash point `name` (a string literal). Thread-safe.
void CrashPoint(const char* name);

}  // namespace qlorad

#endif  // QLORAD_CORE_UTIL_CRASH_POINT_H_
