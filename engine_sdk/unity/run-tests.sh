#!/usr/bin/env bash
# The Unity SDK's suite: compiles the engine-independent core (Runtime/Core) and its NUnit
# tests with Mono's mcs, starts a real `entity-bridge serve` on 127.0.0.1 (port 0) with the
# configs in Tests/Config~, runs the tests with nunit-console, and prints
# `unity: N passed, N failed`. Exits non-zero on any failure, or when the toolchain is missing
# and cannot be installed. The Unity layer (Runtime/Unity) is only compiled against stubs here.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$here/build~"
nunit_dll=/usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll
bridge_bin="${ENTITY_BRIDGE_BIN:-$root/.venv/bin/entity-bridge}"

fail() { echo "unity: $1" >&2; echo "unity: 0 passed, 1 failed"; exit 1; }

if ! command -v mcs >/dev/null || ! command -v nunit-console >/dev/null || [ ! -e "$nunit_dll" ]; then
    bash "$root/.ci/setup/10-mono.sh" || fail "Mono/NUnit toolchain could not be installed (.ci/setup/10-mono.sh)"
fi
[ -x "$bridge_bin" ] || fail "no bridge at $bridge_bin (run 'make install' first)"

rm -rf "$build" && mkdir -p "$build"
python3 "$here/tools~/meta.py" --check || fail "assets without a .meta file (run: python3 engine_sdk/unity/tools~/meta.py)"
mcs -langversion:7.2 -nologo -warnaserror+ -target:library -out:"$build/EntityBridge.Core.dll" \
    -r:System.dll -r:System.Core.dll "$here"/Runtime/Core/*.cs || fail "core does not compile"
mcs -langversion:7.2 -nologo -target:library -out:"$build/EntityBridge.Core.Tests.dll" \
    -r:"$build/EntityBridge.Core.dll" -r:"$nunit_dll" -r:System.dll -r:System.Core.dll \
    "$here"/Tests/Core/*.cs || fail "tests do not compile"
cp "$nunit_dll" "$build/"
# The Unity layer cannot be built without Unity; compile it against hand-written stubs of the
# UnityEngine members it uses (Tests/UnityStubs~), which catches errors in the glue itself.
mcs -langversion:7.2 -nologo -target:library -out:"$build/UnityEngine.dll" "$here/Tests/UnityStubs~/UnityEngineStubs.cs" \
    && mcs -langversion:7.2 -nologo -warnaserror+ -target:library -out:"$build/EntityBridge.Unity.dll" \
        -r:"$build/EntityBridge.Core.dll" -r:"$build/UnityEngine.dll" "$here"/Runtime/Unity/*.cs "$here"/Samples~/*/*.cs \
    || fail "the Unity layer does not compile against the UnityEngine stubs"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT

# The shared bridge for the live tests; the sidecar and restart tests start their own.
port_file="$build/bridge.url"
"$bridge_bin" serve --config "$here/Tests/Config~/bridge.toml" --port 0 --port-file "$port_file" \
    >"$build/bridge.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$port_file" ] && break; kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.1; done
[ -s "$port_file" ] || { tail -n 30 "$build/bridge.log"; fail "test bridge did not start (log above)"; }

export EB_TEST_URL="$(head -n1 "$port_file")"
export EB_BRIDGE_BIN="$bridge_bin"
export EB_TEST_CONFIG_DIR="$here/Tests/Config~"
export EB_CONFORMANCE_DIR="$root/tests/conformance"
export EB_TEST_TMP="$build"
export EB_PYTHON="$root/.venv/bin/python"

cd "$build"
timeout 600 nunit-console -nologo -labels -xml="$build/TestResult.xml" EntityBridge.Core.Tests.dll >"$build/nunit.log" 2>&1
nunit_rc=$?
grep -E "^\*\*\*\*\*|Tests run:|Not run:|^[0-9]+\) |^(Test Failure|Test Error|at |  )" "$build/nunit.log" | grep -v '^\*\*\*\*\*' | head -n 150

python3 - "$build/TestResult.xml" "$nunit_rc" <<'PY'
import sys, xml.etree.ElementTree as ET
path, rc = sys.argv[1], int(sys.argv[2])
try:
    cases = ET.parse(path).getroot().iter("test-case")
except Exception as exc:
    print(f"unity: no test results ({exc}); nunit-console rc {rc}")
    print("unity: 0 passed, 1 failed")
    sys.exit(1)
passed = failed = 0
for case in cases:
    result = case.get("result")
    name = case.get("name")
    if result == "Success":
        passed += 1
    elif result == "Ignored":
        failed += 1
        print(f"IGNORED (counted as failure): {name}: {''.join(case.itertext()).strip()}")
    else:
        failed += 1
        print(f"FAILED: {name} ({result})")
if rc != 0 and failed == 0:
    failed = 1
    print(f"nunit-console exited with {rc}")
print(f"unity: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
