#!/usr/bin/env bash
# Installs the Unity SDK's test toolchain: Mono's C# compiler (mcs), the Mono runtime and
# NUnit 2.6.4, all from Debian (no .NET SDK is installable here; see shared notes).
# Idempotent: does nothing when every tool is already present.
set -euo pipefail

need=()
command -v mcs >/dev/null 2>&1 || need+=(mono-mcs)
command -v mono >/dev/null 2>&1 || need+=(mono-runtime)
command -v nunit-console >/dev/null 2>&1 || need+=(nunit-console)
ls /usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll >/dev/null 2>&1 || need+=(libnunit-cil-dev)

if [ "${#need[@]}" -eq 0 ]; then
    echo "mono: toolchain present ($(mcs --version))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
        echo "mono: cannot install ${need[*]}: not root and no sudo" >&2; exit 1
    fi
else
    SUDO=()
fi

echo "mono: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# apt holds one lock; another set-up script may be running: retry for a while.
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -qq \
        && "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
            mono-mcs mono-runtime nunit-console libnunit-cil-dev; then
        break
    fi
    [ "$attempt" -eq 10 ] && { echo "mono: apt-get install failed: mono-mcs mono-runtime nunit-console libnunit-cil-dev" >&2; exit 1; }
    sleep 10
done

for tool in mcs mono nunit-console; do
    command -v "$tool" >/dev/null 2>&1 || { echo "mono: $tool missing after install" >&2; exit 1; }
done
echo "mono: installed ($(mcs --version))"
