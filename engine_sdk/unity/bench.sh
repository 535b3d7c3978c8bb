#!/usr/bin/env bash
# The Unity SDK's bench (see Bench~/Bench.cs): events decoded + dispatched per second on one
# thread under Mono, and allocation per audio chunk after warm-up. Usage: bench.sh [seconds]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v mcs >/dev/null || bash "$here/../../.ci/setup/10-mono.sh"
out="$here/build~/bench"
mkdir -p "$out"
mcs -langversion:7.2 -nologo -optimize+ -target:library -out:"$out/EntityBridge.Core.dll" "$here"/Runtime/Core/*.cs
mcs -langversion:7.2 -nologo -optimize+ -out:"$out/EntityBridge.Bench.exe" -r:"$out/EntityBridge.Core.dll" "$here/Bench~/Bench.cs"
mono --version | head -n1
mono "$out/EntityBridge.Bench.exe" "${1:-3}"
