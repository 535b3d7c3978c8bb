#!/usr/bin/env bash
# The Godot SDK suite: GDScript tests run by a headless Godot 4 against a live bridge.
#
# Godot 4 lives in a Debian forky chroot (.ci/setup/30-godot.sh builds it, this script calls
# it when the chroot is missing). The repository is bind-mounted into the chroot at its own
# path, so paths are the same on both sides; the host's root is bind-mounted at /host so the
# sidecar test can start the host's `entity-bridge` from inside the chroot (through the
# wrapper written below). Every mount is undone on exit, on failure and on Ctrl-C.
#
# Prints `godot: N passed, N failed` last and exits non-zero on any failure, or when Godot or
# the bridge cannot be started. Options are passed to the runner, e.g. `--only msgpack`.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
root=${GODOT_CHROOT:-/var/cache/entity-bridge/godot-chroot}
work="$repo/build/godot-tests"
bridge="$repo/.venv/bin/entity-bridge"

give_up() { echo "godot: $*" >&2; echo "godot: 0 passed, 1 failed"; exit 1; }

[ "$(id -u)" -eq 0 ] || give_up "needs root (chroot, mount --bind); running as $(id -un)"
if ! chroot "$root" godot --headless --version >/dev/null 2>&1; then
    echo "godot: no working Godot chroot at $root; running .ci/setup/30-godot.sh"
    bash "$repo/.ci/setup/30-godot.sh" || give_up "Godot 4 could not be installed (see the message above)"
fi
[ -x "$bridge" ] || give_up "no bridge at $bridge (run make install first)"

# One suite at a time per chroot: runs from several checkouts share its /host mounts, and a
# run's cleanup must not unmount what another run is using.
exec 8>"$root.run.lock"
flock -w 900 8 || give_up "another Godot suite has held $root.run.lock for 15 minutes"

rm -rf "$work"
mkdir -p "$work"
mounts=()
bridge_pids=()
cleanup() {
    local pid
    for pid in "${bridge_pids[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    local i
    for (( i=${#mounts[@]}-1; i>=0; i-- )); do
        umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" 2>/dev/null \
            || echo "godot: could not unmount ${mounts[$i]}" >&2
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() {  # bind SRC DST: mount SRC at DST inside the chroot, remembered for cleanup
    mkdir -p "$2"
    # A run killed with SIGKILL cannot clean up: drop its leftover mount first.
    while mountpoint -q "$2"; do umount "$2" 2>/dev/null || umount -l "$2"; done
    mount --bind "$1" "$2" || give_up "mount --bind $1 $2 failed"
    mounts+=("$2")
}
bind "$repo" "$root$repo"
bind / "$root/host"
bind /dev "$root/host/dev"

# What Godot's OS.create_process / OS.execute_with_pipe runs for the sidecar test: the real
# bridge of this checkout, started on the host side of the chroot. exec keeps one process, so
# the pid Godot holds is the bridge's own, and its stdin is Godot's pipe.
cat >"$work/entity-bridge" <<WRAP
#!/bin/sh
exec /usr/sbin/chroot /host "$bridge" "\$@"
WRAP
chmod +x "$work/entity-bridge"

start_bridge() {  # start_bridge CONFIG NAME: a bridge on 127.0.0.1 port 0; its URL in $work/NAME.url
    "$bridge" serve --config "$1" --port 0 --port-file "$work/$2.url" >"$work/$2.log" 2>&1 8>&- &
    local pid=$!
    bridge_pids+=("$pid")
    for _ in $(seq 1 300); do
        [ -s "$work/$2.url" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$work/$2.log" >&2
    give_up "the $2 bridge did not start (log: $work/$2.log)"
}
start_bridge "$here/tests/bridge.toml" bridge
url=$(head -n1 "$work/bridge.url")
# A second bridge on the conformance corpus's own config, for the scripted scenarios.
start_bridge "$repo/tests/conformance/bridge.toml" scenario
scenario_url=$(head -n1 "$work/scenario.url")
echo "godot: bridge at $url; $(chroot "$root" godot --headless --version 2>/dev/null | tail -n1)"

# An editor import builds the class cache (class_name types such as BridgeClient resolve
# through it, as in a game's project) and loads the editor plugin once.
if ! chroot "$root" godot --headless --path "$here" --import >"$work/import.log" 2>&1; then
    tail -n 20 "$work/import.log" >&2
    give_up "godot --import failed (log: $work/import.log)"
fi
if grep -E '^(SCRIPT )?ERROR' "$work/import.log" >&2; then
    give_up "the editor import reported errors (log: $work/import.log)"
fi

log="$work/godot.log"
timeout 600 chroot "$root" godot --headless --path "$here" --script res://tests/run.gd 8>&- -- \
    --bridge "$url" --entity-bridge-url "$url" --scenario-bridge "$scenario_url" --repo "$repo" --scratch "$work" --sidecar "$work/entity-bridge" \
    --bridge-config "$here/tests/bridge.toml" "$@" 2>&1 \
    | grep --line-buffered -v -e '^WARNING: Couldn.t get executable path' -e 'get_executable_path (drivers' \
    | tee "$log"
rc=${PIPESTATUS[0]}
if ! grep -qE '^runner: [0-9]+ passed, [0-9]+ failed$' "$log"; then
    echo "godot: the runner ended (rc $rc) without a summary (log: $log)"
    echo "godot: 0 passed, 1 failed"
    exit 1
fi
# GDScript has no exceptions: a runtime error only aborts the function and logs SCRIPT ERROR,
# so a test that hit one may look clean to the runner. Recount from the log: a test whose
# output (START..PASS) holds a SCRIPT ERROR failed, and so does a file that did not compile,
# and a test that could not run here (NOT RUN): nothing is skipped silently.
read -r passed failed < <(awk '
    /^START / { errs = 0; next }
    /^SCRIPT ERROR/ { errs++; next }
    /^PASS / { if (errs) { failed++; print "FAIL (script error) " $2 > "/dev/stderr" } else passed++; errs = 0; next }
    /^FAIL / { failed++; errs = 0; next }
    /^NOT RUN / { failed++; print "FAIL (not run) " $3 > "/dev/stderr"; errs = 0; next }
    END { print passed + 0, failed + 0 }' "$log")
echo "godot: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] || exit 1
exit 0
