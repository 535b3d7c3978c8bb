#!/usr/bin/env bash
# Installs a headless Godot 4 for the Godot SDK suite (engine_sdk/godot/run-tests.sh).
#
# Why a chroot: Godot 4 is not packaged for Debian bookworm; Debian forky (testing) ships
# godot 4.6.x, but it needs a newer libc than bookworm's, so it cannot be installed next to
# the host system. debootstrap builds a minimal forky root with Debian's own godot package in
# it (see /work/shared/engine-sdks.md section 2). The root is built in a scratch folder and
# moved into place only once `godot --headless --version` works inside it, so a half-built
# root is never reused; a working root is reused as is (the cache between CI runs).
#
# Environment: GODOT_CHROOT (default /var/cache/entity-bridge/godot-chroot),
# GODOT_SUITE (default forky), GODOT_MIRROR (default: the host's Debian mirror).
# Needs root (debootstrap, chroot). Exits non-zero with a clear message when Godot cannot be
# installed: the Godot suite never skips silently.
set -euo pipefail

root=${GODOT_CHROOT:-/var/cache/entity-bridge/godot-chroot}
suite=${GODOT_SUITE:-forky}

fail() { echo "30-godot.sh: GODOT NOT INSTALLED: $*" >&2; exit 1; }

works() { [ -x "$1/usr/bin/godot" ] && chroot "$1" godot --headless --version >/dev/null 2>&1; }

[ "$(id -u)" -eq 0 ] || fail "needs root for debootstrap/chroot (running as $(id -un))"

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock -w 1200 9 || fail "timed out waiting for $root.lock"

if works "$root"; then
    echo "30-godot.sh: reusing $root ($(chroot "$root" godot --headless --version 2>/dev/null | tail -n1))"
    exit 0
fi

mirror=${GODOT_MIRROR:-}
if [ -z "$mirror" ]; then
    # The host's main Debian mirror (deb822 "URIs:" or one-line "deb URL suite" form).
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^(URIs:|deb )/ { for (i = 1; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

start=$(date +%s)
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "30-godot.sh: installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends debootstrap >/dev/null \
        || { apt-get -o DPkg::Lock::Timeout=600 update >/dev/null \
             && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
                --no-install-recommends debootstrap >/dev/null; } \
        || fail "apt-get install debootstrap failed"
fi

# bookworm's debootstrap has no script for forky; testing uses the same layout as sid.
script=/usr/share/debootstrap/scripts/$suite
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
[ -e "$script" ] || fail "no debootstrap script for $suite"

# A broken old root may still hold a test run's bind mounts (a run killed with SIGKILL), a
# half-built one debootstrap's /proc: unmount them, deepest first, before anything is removed,
# so rm never walks into the repository or the host.
unmount_under() {
    local mnt
    for mnt in $(awk -v r="$1" 'index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" || fail "cannot unmount $mnt"
    done
}

scratch="$root.building"
unmount_under "$scratch"
rm -rf --one-file-system "$scratch"
echo "30-godot.sh: debootstrap $suite from $mirror into $scratch"
debootstrap --variant=minbase "$suite" "$scratch" "$mirror" "$script" >"$scratch.log" 2>&1 \
    || { tail -n 20 "$scratch.log" >&2; fail "debootstrap $suite failed (log: $scratch.log)"; }
echo "30-godot.sh: apt-get install godot inside the chroot"
chroot "$scratch" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    godot ca-certificates >>"$scratch.log" 2>&1 \
    || { tail -n 20 "$scratch.log" >&2; fail "apt-get install godot in the $suite chroot failed (log: $scratch.log)"; }
chroot "$scratch" apt-get clean >/dev/null 2>&1 || true
works "$scratch" || fail "godot --headless --version does not run in $scratch"

unmount_under "$root"
rm -rf --one-file-system "$root"
mv "$scratch" "$root"
mv "$scratch.log" "$root.log"
echo "30-godot.sh: installed $(chroot "$root" godot --headless --version 2>/dev/null | tail -n1) in $root in $(( $(date +%s) - start )) s"
