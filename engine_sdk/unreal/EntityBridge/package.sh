#!/usr/bin/env bash
# Assembles an installable copy of the plugin: EntityBridge/ plus the portable core (the
# same sources the doctest suite tests) copied into Source/EntityBridge/Private/Core, where
# Unreal compiles it as module source. Usage: package.sh [OUT_DIR]  (default build/unreal-plugin)
# Then copy OUT_DIR/EntityBridge into <YourProject>/Plugins/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$root/build/unreal-plugin}"
rm -rf "$out/EntityBridge"
mkdir -p "$out"
cp -R "$here" "$out/EntityBridge"
rm -f "$out/EntityBridge/package.sh"
core="$out/EntityBridge/Source/EntityBridge/Private/Core"
mkdir -p "$core"
cp -R "$here/../core/include" "$here/../core/src" "$core/"
echo "$out/EntityBridge"
