#!/usr/bin/env bash
# Make sure a headless Chromium is installed for the report tests and PNG export (Debian package `chromium`).
# Idempotent: does nothing when /usr/bin/chromium exists. Installs with apt-get when run as root; otherwise
# says what to run and fails, so that a test needing the browser never silently skips.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium: /usr/bin/chromium is missing; run as root: apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
