#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright. Install it when we can (root + apt);
# otherwise say so: the browser tests then skip with this reason, unless CI requires them.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium for the browser tests..."
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "note: /usr/bin/chromium is missing; browser tests will be skipped (sudo apt-get install chromium)." >&2
