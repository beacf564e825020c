#!/usr/bin/env bash
# Runs the browser tests of the web UI: headless Debian Chromium driven by
# playwright-core, against the real daemon (target/debug/servitor).
# Installs Chromium with apt when it is missing; never downloads a browser otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "browser tests: installing Debian's chromium" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

cd "$here"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

# A no-op when the binary is up to date.
(cd "$repo" && cargo build --locked)

mkdir -p "$repo/test-output/screenshots"
exec node --test --test-concurrency=1 "$here"/*.test.js
