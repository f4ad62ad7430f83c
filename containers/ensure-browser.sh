#!/usr/bin/env bash
# Make sure a headless Chromium is present: the report's test renders the HTML report in it (tables, charts and
# an opened episode are checked on the rendered page). As root on Debian: installs Debian's `chromium` when
# missing. Otherwise: says what to do (the test is then skipped outside CI, and fails under CI=true).
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "warning: no chromium; install it (Debian: sudo apt-get install -y chromium) to run the report's test" >&2
  exit 0
fi
echo "[browser] installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
