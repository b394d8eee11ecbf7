#!/usr/bin/env bash
# Clang's thread-safety analysis over the translation units that hold locks: the
# absl::Mutex annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED,
# ABSL_LOCKS_EXCLUDED) of core/serve, core/service, core/monitor, core/constrain and
# the daemon's GenerationStream are checked by clang++-14 -fsyntax-only
# -Wthread-safety -Wthread-safety-beta, any finding an error.
# GCC ignores the annotations; this is the build variant that enforces them.
#
# Usage: deploy/thread-safety-check.sh [BUILD_DIR]   (default ${QLORAD_BUILD_DIR:-build})
#   Needs BUILD_DIR/compile_commands.json (deploy/build.sh writes it) and clang++-14
#   (Debian clang-14, in deploy/setup.sh); QLORAD_CLANGXX picks another clang++.
#   Each TU is checked with its own flags from the database (GCC-only flags dropped,
#   the project's -W flags replaced), in parallel (xargs -P "$(nproc)").
#
# Liveness: tests/thread_safety/unguarded_access.cc (never built) reads a guarded
# member without its lock; it is checked with the flags of a real TU, and the check
# fails unless clang reports a thread-safety error on every line it marks.
#
# Exit status 0 only when the probe is rejected as expected and every TU is clean.
# Runs as the ctest test `thread_safety_check` (tests/deploy/CMakeLists.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
build_dir=${1:-${QLORAD_BUILD_DIR:-build}}
build_dir=$(cd "$build_dir" 2>/dev/null && pwd) || { echo "thread-safety-check: no build directory '${1:-${QLORAD_BUILD_DIR:-build}}' (hint: run deploy/build.sh first)" >&2; exit 1; }
db=$build_dir/compile_commands.json
clangxx=${QLORAD_CLANGXX:-clang++-14}
probe=tests/thread_safety/unguarded_access.cc
# Directories (every .cc) and single files: where annotated classes are defined.
dirs=(core/serve core/service core/store core/eval core/monitor core/constrain server/daemon/generation_stream.cc)

command -v "$clangxx" >/dev/null || { echo "thread-safety-check: $clangxx not found (hint: apt-get install clang-14, see deploy/setup.sh)" >&2; exit 1; }
[ -f "$db" ] || { echo "thread-safety-check: $db is missing (hint: configure with deploy/build.sh; CMAKE_EXPORT_COMPILE_COMMANDS is on)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/qlorad-tsa.XXXXXX")
trap 'rm -rf "$work"' EXIT
begin=$(date +%s%N)

# One response file per TU: its database flags minus the compiler, -o/-c, the source,
# GCC-only options and -W* (only thread-safety findings matter here; the GCC build
# keeps -Wall -Wextra clean), plus the analysis flags. Lines of $work/tus: dir<TAB>rsp<TAB>source.
/usr/bin/python3 - "$db" "$ROOT" "$work" "$probe" "${dirs[@]}" <<'PY'
import json, os, shlex, sys
db, root, work, probe, dirs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
ANALYSIS = ["-fsyntax-only", "-Wno-everything", "-Wthread-safety", "-Wthread-safety-beta",
            "-Werror=thread-safety", "-Werror=thread-safety-beta", "-ferror-limit=0"]
GCC_ONLY = ("-fno-gnu-unique", "-fconcepts", "-fno-semantic-interposition", "-fipa-", "-fmax-errors",
            "-fdiagnostics-color", "-flto", "-ffat-lto-objects", "-fno-plt", "-fstack-clash-protection",
            "-fcf-protection", "-fpch-preprocess", "-Wp,")
def flags(entry):
    args = entry.get("arguments") or shlex.split(entry["command"])
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD") or a == entry["file"] or a.startswith("-W") or a.startswith(GCC_ONLY):
            continue
        out.append(a)
    return out + ANALYSIS
def rsp(path, args):
    with open(path, "w") as f:
        f.write("\n".join(shlex.quote(a) for a in args) + "\n")
entries = json.load(open(db))
picked = []
for e in entries:
    src = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(src, root)
    if rel.endswith(".cc") and any(rel == d or rel.startswith(d + "/") for d in dirs):
        picked.append((e, src, rel))
if not picked:
    sys.exit(f"thread-safety-check: no TU of {' '.join(dirs)} in {db} (hint: configure the full tree, no QLORAD_SKIP_PARTS)")
with open(os.path.join(work, "tus"), "w") as tus:
    for i, (e, src, rel) in enumerate(sorted(picked, key=lambda p: p[2])):
        path = os.path.join(work, f"{i:03d}.rsp")
        rsp(path, flags(e) + [src])
        tus.write(f"{e['directory']}\t{path}\t{rel}\n")
# The probe gets the flags of a real TU (the first of core/serve, else the first picked).
ref = next((p for p in picked if p[2].startswith("core/serve/")), picked[0])
rsp(os.path.join(work, "probe.rsp"), flags(ref[0]) + [os.path.join(root, probe)])
with open(os.path.join(work, "probe_dir"), "w") as f:
    f.write(ref[0]["directory"])
PY

# 1. Liveness: the probe must fail with a thread-safety error on each marked line.
expected=$(grep -n 'EXPECT-THREAD-SAFETY-ERROR' "$probe" | cut -d: -f1 | while read -r n; do echo $((n + 1)); done)
[ -n "$expected" ] || { echo "thread-safety-check: $probe marks no line (EXPECT-THREAD-SAFETY-ERROR)" >&2; exit 1; }
probe_status=0
(cd "$(cat "$work/probe_dir")" && "$clangxx" @"$work/probe.rsp") >"$work/probe.log" 2>&1 || probe_status=$?
live=1
[ "$probe_status" -ne 0 ] || live=0
for line in $expected; do
  grep -Eq "unguarded_access\.cc:${line}:[0-9]+: error: .*\[-Werror,-Wthread-safety" "$work/probe.log" || live=0
done
if [ "$live" -ne 1 ]; then
  echo "thread-safety-check: FAILED: the analysis is not live; $probe should be rejected on lines" $expected >&2
  echo "--- clang (exit $probe_status) said:" >&2
  cat "$work/probe.log" >&2
  exit 1
fi
echo "thread-safety-check: probe rejected as expected ($(grep -c 'error: .*-Wthread-safety' "$work/probe.log") errors on lines $(echo $expected))"

# 2. Every TU, in parallel; each writes NNN.rsp.log and NNN.rsp.fail on failure.
check_tu() {
  local dir=$1 rsp=$2 rel=$3
  (cd "$dir" && "$QLORAD_TSA_CLANGXX" @"$rsp") >"$rsp.log" 2>&1 || echo "$rel" >"$rsp.fail"
}
export -f check_tu
export QLORAD_TSA_CLANGXX=$clangxx
jobs=${QLORAD_TSA_JOBS:-$(nproc)}
n=$(wc -l <"$work/tus")
tr '\t' '\n' <"$work/tus" | xargs -d '\n' -n3 -P"$jobs" bash -c 'check_tu "$@"' _
failed=0
for f in "$work"/*.rsp.fail; do
  [ -e "$f" ] || continue
  failed=$((failed + 1))
  echo "--- $(cat "$f"):" >&2
  cat "${f%.fail}.log" >&2
done
tenths=$((($(date +%s%N) - begin) / 100000000))
elapsed=$((tenths / 10)).$((tenths % 10))
if [ "$failed" -ne 0 ]; then
  echo "thread-safety-check: FAILED: $failed of $n TUs have thread-safety errors (or do not parse with clang) [${elapsed} s, ${jobs} jobs]" >&2
  exit 1
fi
echo "thread-safety-check: OK: $n TUs of ${dirs[*]} clean under -Wthread-safety -Wthread-safety-beta [${elapsed} s, ${jobs} jobs]"
