#!/usr/bin/env bash
# Make sure Debian's Chromium is installed (/usr/bin/chromium) for the browser test: install it
# with apt when it is missing. Playwright drives this browser; it downloads none of its own.
# Idempotent, and safe when several test runs call it at once (one installs, the others wait).
set -euo pipefail
CHROMIUM="${PORTD_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$CHROMIUM" != /usr/bin/chromium ]; then
  echo "ensure-chromium: PORTD_CHROMIUM=$CHROMIUM is not an executable" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: /usr/bin/chromium is missing and there is no apt-get: install Chromium by hand" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "ensure-chromium: /usr/bin/chromium is missing; run as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
  fi
fi
install_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return 0 # another run installed it while we waited for the lock
  fi
  echo "ensure-chromium: installing Debian's chromium with apt-get (once)" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
}
LOCK="${TMPDIR:-/tmp}/portd-ensure-chromium.lock"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$LOCK"
  flock -w 900 9
fi
install_chromium
if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-chromium: apt-get ran but /usr/bin/chromium is still missing" >&2
  exit 1
fi
