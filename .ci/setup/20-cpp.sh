#!/usr/bin/env bash
# C++ toolchain for the Unreal SDK's portable core (engine_sdk/unreal/): its tests link
# Boost.Beast (header-only, libboost-dev) as a test-only WebSocket transport and use doctest;
# clang + libclang-rt-14-dev give libFuzzer for the decoder fuzz. The shipped core needs none
# of these. Idempotent: checks the packages first, installs only what is missing.
set -euo pipefail
packages=(g++ cmake make libboost-dev doctest-dev clang libclang-rt-14-dev)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "cpp toolchain: already installed"
    exit 0
fi
echo "cpp toolchain: installing ${missing[*]}"
apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
if ! DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}"; then
    # A fresh machine may have stale package lists: refresh once and retry.
    apt-get update -q -o DPkg::Lock::Timeout=300
    DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" || {
        echo "cpp toolchain: FAILED to install ${missing[*]}" >&2
        exit 1
    }
fi
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || {
        echo "cpp toolchain: $pkg is still missing" >&2
        exit 1
    }
done
echo "cpp toolchain: installed"
