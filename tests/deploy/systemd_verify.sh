#!/usr/bin/env bash
# `systemd-analyze verify` of deploy/systemd/qlorad.service. The daemon binary
# is not installed at /usr/local/bin here, so a copy of the unit with ExecStart
# pointed at /bin/true is verified (everything else unchanged). verify exits 0
# even on unknown keys or bad values, so ANY output counts as a failure.
# Exit 77 (ctest SKIP) when systemd-analyze is missing.
set -uo pipefail
unit=${1:?usage: systemd_verify.sh path/to/qlorad.service}
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze not installed; deploy/systemd/qlorad.service NOT verified"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's|/usr/local/bin/qlorad|/bin/true|' "$unit" > "$tmp/qlorad.service"
# Sanity: this check does catch a broken unit.
printf '[Service]\nExecStart=/bin/true\nProtectSystem=sideways\n' > "$tmp/broken.service"
if [ -z "$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/broken.service" 2>&1)" ]; then
  echo "SKIP: systemd-analyze verify reports nothing even for a broken unit here; NOT verified"
  exit 77
fi
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/qlorad.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify (rc=$rc):"
  echo "$out"
  exit 1
fi
echo "systemd-analyze verify: qlorad.service OK"
