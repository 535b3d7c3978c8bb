#!/usr/bin/env bash
# Godot SDK benchmarks (tests/bench.gd) in the headless Godot chroot; figures in
# docs/performance.md. Needs root and the chroot of .ci/setup/30-godot.sh. No bridge needed:
# frames are fed to BridgeClient.receive_message, the same path received frames take.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=${GODOT_CHROOT:-/var/cache/entity-bridge/godot-chroot}
chroot "$root" godot --headless --version >/dev/null 2>&1 || bash "$repo/.ci/setup/30-godot.sh"
exec 8>"$root.run.lock"  # not while a test run uses the chroot's mounts
flock -w 900 8
mkdir -p "$root$repo"
mountpoint -q "$root$repo" && umount "$root$repo"
mount --bind "$repo" "$root$repo"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"  # CPU time from /proc/self/stat
trap 'umount "$root/proc" || umount -l "$root/proc"; umount "$root$repo" || umount -l "$root$repo"' EXIT
chroot "$root" godot --headless --path "$here" --import >/dev/null 2>&1
out=$(chroot "$root" godot --headless --path "$here" --script res://tests/bench.gd 2>&1)
grep "^bench:" <<<"$out" || { echo "$out" | tail -n 20; exit 1; }
