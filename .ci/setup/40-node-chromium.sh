#!/usr/bin/env bash
# Toolchain for the JS SDK and the console's browser tests (engine_sdk/js/run-tests.sh):
# Node.js (already on the machine: checked, not installed; Debian's own is too old for
# Vitest 4) and Debian's Chromium, which Playwright (playwright-core) drives headless.
# npm's own browser downloads do not work here, so the browser comes from apt.
# Idempotent: quick when everything is there.
set -euo pipefail

need_major=20
need_minor=19
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "40-node-chromium: Node.js >= ${need_major}.${need_minor} with npm is required and was not found on PATH" >&2
    exit 1
fi
version=$(node -p 'process.versions.node')
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
if [ "$major" -lt "$need_major" ] || { [ "$major" -eq "$need_major" ] && [ "$minor" -lt "$need_minor" ]; }; then
    echo "40-node-chromium: Node.js $version is too old; the JS SDK's tools (Vitest 4, Vite 8) need >= ${need_major}.${need_minor}" >&2
    exit 1
fi
echo "node $version, npm $(npm --version)"

if [ -x /usr/bin/chromium ] && /usr/bin/chromium --version >/dev/null 2>&1; then
    /usr/bin/chromium --version
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "40-node-chromium: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if apt-get update -q && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; then
        break
    fi
    echo "40-node-chromium: apt-get failed (attempt $attempt), retrying in 10 s" >&2
    sleep 10
done
if ! /usr/bin/chromium --version; then
    echo "40-node-chromium: could not install Debian's chromium" >&2
    exit 1
fi
