#!/usr/bin/env bash
# Unreal SDK suite: builds the portable C++ core and its doctest suite twice (plain -O2, and
# with AddressSanitizer + UndefinedBehaviorSanitizer), runs both (the live tests start their
# own `entity-bridge serve` on 127.0.0.1 port 0 with tests/bridge.toml), runs the libFuzzer
# decoder fuzz for a bounded time, and prints `unreal: N passed, N failed`.
#
# Build directories are cached under build/ at the repository root, so a second run only
# recompiles what changed. EB_JOBS (default 2) caps the compile jobs: the machine is shared.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
jobs="${EB_JOBS:-2}"
export EB_BRIDGE_BIN="${EB_BRIDGE_BIN:-$root/.venv/bin/entity-bridge}"

toolchain_ok() {
    command -v g++ >/dev/null && command -v cmake >/dev/null &&
        [ -f /usr/include/doctest/doctest.h ] && [ -f /usr/include/boost/beast/websocket.hpp ]
}
if ! toolchain_ok; then
    echo "unreal: C++ toolchain missing, running .ci/setup/20-cpp.sh"
    bash "$root/.ci/setup/20-cpp.sh" || true
fi
if ! toolchain_ok; then
    echo "unreal: the C++ toolchain could not be installed (g++, cmake, doctest-dev, libboost-dev)"
    echo "unreal: 0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$EB_BRIDGE_BIN" ]; then
    echo "unreal: no bridge at $EB_BRIDGE_BIN (run make install)"
    echo "unreal: 0 passed, 1 failed"
    exit 1
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
passed=0
failed=0

build() {  # name, build dir, extra cmake args...
    local name="$1" dir="$2"
    shift 2
    local start=$SECONDS
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S "$here" -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 ||
            { cat "$dir.configure.log"; return 1; }
    fi
    cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1 || { tail -n 60 "$dir.build.log"; return 1; }
    echo "unreal: built $name in $((SECONDS - start)) s"
}

run_suite() {  # name, binary, env...
    local name="$1" bin="$2"
    shift 2
    local log="$root/build/test-logs/unreal-$name.log"
    mkdir -p "$(dirname "$log")"
    local start=$SECONDS
    # Every wait inside the suite is bounded; this bounds the whole run as well.
    env EB_BRIDGE_LOG="$root/build/test-logs/unreal-$name-bridge.log" "$@" \
        timeout -k 10 600 "$bin" --no-version --duration=false >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^\[doctest\] test cases:' "$log" | tail -n 1)
    local p f
    p=$(echo "$line" | sed -nE 's/.*\| *([0-9]+) passed.*/\1/p')
    f=$(echo "$line" | sed -nE 's/.*\| *([0-9]+) failed.*/\1/p')
    grep -E '^(waiting for|NOTE)' "$log" | sort -u
    if [ -z "$p" ] || [ -z "$f" ]; then
        echo "unreal: $name suite crashed or timed out (rc $rc); last lines of $log:"
        tail -n 40 "$log"
        failed=$((failed + 1))
        return
    fi
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        grep -B2 -A12 -E 'ERROR|FATAL|runtime error|AddressSanitizer' "$log" | head -n 120
        [ "$f" -eq 0 ] && f=1
    fi
    echo "unreal: $name: $p passed, $f failed ($((SECONDS - start)) s)"
    passed=$((passed + p))
    failed=$((failed + f))
}

mkdir -p "$root/build"
if build plain "$root/build/unreal"; then
    run_suite plain "$root/build/unreal/eb_tests"
else
    echo "unreal: plain build FAILED"
    failed=$((failed + 1))
fi
# The sanitized build links the plain build's Beast transport (see CMakeLists.txt): Beast
# under ASan alone would take ~110 s to compile on this machine.
if [ -f "$root/build/unreal/libeb_beast.a" ] &&
    build sanitized "$root/build/unreal-asan" -DEB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
        -DEB_PREBUILT_BEAST="$root/build/unreal/libeb_beast.a"; then
    run_suite sanitized "$root/build/unreal-asan/eb_tests" \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
    echo "unreal: sanitized build FAILED"
    failed=$((failed + 1))
fi

# The Unreal plugin cannot be compiled here; check at least that its package carries exactly
# the core sources this suite tested.
pkg=$(bash "$here/EntityBridge/package.sh" "$root/build/unreal-plugin" 2>&1)
if [ -f "$pkg/EntityBridge.uplugin" ] && diff -r "$here/core/src" "$pkg/Source/EntityBridge/Private/Core/src" >/dev/null &&
    diff -r "$here/core/include" "$pkg/Source/EntityBridge/Private/Core/include" >/dev/null; then
    echo "unreal: plugin package assembled with the tested core ($pkg)"
    passed=$((passed + 1))
else
    echo "unreal: plugin package FAILED: $pkg"
    failed=$((failed + 1))
fi

# Unreal compiles module source as C++20 by default (UE 5.3+): the core must build so too,
# with both compilers, warnings as errors, no exceptions, no RTTI.
std_ok=1
for cxx in g++ clang++; do
    command -v "$cxx" >/dev/null || continue
    for src in "$here"/core/src/*.cpp; do
        "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Werror \
            -fno-exceptions -fno-rtti -I"$here/core/include" "$src" || { std_ok=0; echo "unreal: $src fails as C++20 with $cxx"; }
    done
done
if [ "$std_ok" -eq 1 ]; then
    echo "unreal: core builds as C++20 with g++ and clang++"
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

# libFuzzer on the decoders for a bounded time, seeded with the conformance corpus.
fuzz_seconds="${EB_FUZZ_SECONDS:-15}"
if command -v clang++ >/dev/null; then
    fuzz_dir="$root/build/unreal-fuzz"
    if build libfuzzer "$fuzz_dir" -DCMAKE_CXX_COMPILER=clang++ -DEB_TESTS=OFF -DEB_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1"; then
        rm -rf "$fuzz_dir/corpus" && mkdir -p "$fuzz_dir/corpus" "$fuzz_dir/seeds"
        python3 - "$root/tests/conformance" "$fuzz_dir/seeds" <<'PY'
import json, pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for name in ("frames.json", "frames_bad.json"):
    for frame in json.loads((src / name).read_text())["frames"]:
        data = bytes.fromhex(frame["msgpack"])
        if len(data) <= 8192:
            (dst / f"{n:04d}.bin").write_bytes(data); n += 1
        if "json" in frame:
            (dst / f"{n:04d}.json").write_text(frame["json"]); n += 1
PY
        log="$root/build/test-logs/unreal-libfuzzer.log"
        start=$SECONDS
        if (cd "$fuzz_dir" && ./eb_fuzz_decoder -max_total_time="$fuzz_seconds" -timeout=5 -rss_limit_mb=2048 \
                -max_len=16384 -print_final_stats=1 corpus seeds) >"$log" 2>&1; then
            runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
            echo "unreal: libFuzzer: ${runs:-?} inputs in $((SECONDS - start)) s, no crash, no leak, no hang"
            passed=$((passed + 1))
        else
            echo "unreal: libFuzzer FAILED (see $log):"
            grep -A25 -E 'ERROR|SUMMARY|deadly' "$log" | head -n 60
            failed=$((failed + 1))
        fi
    else
        echo "unreal: libFuzzer build FAILED"
        failed=$((failed + 1))
    fi
else
    echo "unreal: clang++ missing (installed by .ci/setup/20-cpp.sh): libFuzzer not run"
    failed=$((failed + 1))
fi

echo "unreal: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
