#!/usr/bin/env bash
# The JS SDK's suite (run by tools/run-tests after the Python suite, or on its own):
# installs the toolchain if missing (.ci/setup/40-node-chromium.sh), `npm ci` when
# node_modules is missing or older than the lockfile, builds the bundle, runs the Vitest unit
# and live tests (each suite starts its own `entity-bridge serve` on 127.0.0.1, port 0, with
# test-config/bridge.toml), then the browser tests of the console (Playwright driving
# Debian's Chromium), and prints `js: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")"
SDK=$(pwd)
REPO=$(cd ../.. && pwd)
mkdir -p build

fail() {
    echo "js: $1" >&2
    echo "js: 0 passed, 1 failed"
    exit 1
}

if ! command -v node >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
    bash "$REPO/.ci/setup/40-node-chromium.sh" || fail "toolchain could not be installed (.ci/setup/40-node-chromium.sh)"
fi
if [ -d /var/cache/entity-bridge ] || mkdir -p /var/cache/entity-bridge/npm 2>/dev/null; then
    export npm_config_cache=/var/cache/entity-bridge/npm
fi
if [ ! -d node_modules ] || ! cmp -s package-lock.json node_modules/.eb-installed-lock; then
    npm ci --no-audit --no-fund --loglevel=error || fail "npm ci failed"
    cp package-lock.json node_modules/.eb-installed-lock
fi
npm run --silent build || fail "build failed"

export EB_PYTHON=${EB_PYTHON:-$REPO/.venv/bin/python}
passed=0
failed=0
count() { # vitest JSON report -> totals
    local report=$1
    if [ ! -s "$report" ]; then
        failed=$((failed + 1))
        return
    fi
    local p f
    # A run that failed outside any test (a suite that could not load) counts as one failure.
    read -r p f < <(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(r.numPassedTests, r.numFailedTests + (r.success===false && r.numFailedTests===0 ? 1 : 0))' "$report" || echo "0 1")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-1}))
}

rm -f build/vitest-unit.json build/vitest-browser.json
npx vitest run --reporter=default --reporter=json --outputFile.json=build/vitest-unit.json
count build/vitest-unit.json

if [ -f vitest.browser.config.ts ]; then
    npx vitest run --config vitest.browser.config.ts --reporter=default --reporter=json --outputFile.json=build/vitest-browser.json
    count build/vitest-browser.json
fi

echo "js: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
