#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the portal's browser test
# (examples/portal/tests/it/browser.rs), unless they are already there.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
SUDO=()
[ "$(id -u)" = "0" ] || SUDO=(sudo)
"${SUDO[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q chromium chromium-driver
