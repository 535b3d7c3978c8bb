#!/usr/bin/env bash
# PostgreSQL server binaries for the Python suite's shared-memory tests (tests/postgres_cluster.py
# starts a throw-away cluster on 127.0.0.1 from them). Debian's packages; idempotent.
set -euo pipefail

have_postgres() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

if have_postgres; then
    echo "postgres: $(ls -d /usr/lib/postgresql/*/bin | head -n1) already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "postgres: PostgreSQL is not installed and this is not root; run: sudo apt-get install postgresql" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "postgres: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq --no-install-recommends postgresql >/dev/null || {
    echo "postgres: apt-get install postgresql failed" >&2
    exit 1
}
# Debian's package starts a system cluster on 5432; the tests use their own cluster instead.
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
        pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
    done
fi
have_postgres || { echo "postgres: installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin" >&2; exit 1; }
echo "postgres: installed $(ls -d /usr/lib/postgresql/*/bin | head -n1)"
