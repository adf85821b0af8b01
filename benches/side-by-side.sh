#!/bin/sh
# Side-by-side enrollment with real clients: for each server in turn, N
# stock tailscaled 1.96.4, each in its own network namespace (the
# integration harness, fresh per server), run `tailscale up` one after
# another; prints each `up` time, then one `bench side-by-side ...` line per
# server (full-mesh time, server CPU and RSS, PostgreSQL backend CPU, CPU
# while idle).
#
#   RSCALE_BIN=/path/to/rscale benches/side-by-side.sh [N]     (default 20)
#
# Servers: SIDE_BY_SIDE_SERVERS, default "clawscale,rscale" (clawscale on
# PostgreSQL, as rscale; "clawscale-sqlite" is clawscale on SQLite). rscale
# is never built here: RSCALE_BIN names a binary you built (docs/performance.md,
# "Side by side"). Needs root, iproute2, psql, CLAWSCALE_TEST_POSTGRES_URL (a
# unix-socket URL) and the clients `.ci/run --setup-only` provisions.
set -eu
cd "$(dirname "$0")/.."
servers="${SIDE_BY_SIDE_SERVERS:-clawscale,rscale}"
needs_pg=
for s in $(echo "$servers" | tr ',' ' '); do
    case "$s" in
    rscale)
        needs_pg=1
        if [ -z "${RSCALE_BIN:-}" ]; then
            echo "side-by-side: RSCALE_BIN is not set; build rscale 0.1.0 (see docs/performance.md," >&2
            echo "\"Side by side\") and point RSCALE_BIN at it, or set SIDE_BY_SIDE_SERVERS=clawscale" >&2
            exit 2
        fi
        ;;
    clawscale) needs_pg=1 ;;
    esac
done
if [ -n "$needs_pg" ] && [ -z "${CLAWSCALE_TEST_POSTGRES_URL:-}" ]; then
    echo "side-by-side: CLAWSCALE_TEST_POSTGRES_URL is not set (a unix-socket URL, e.g." >&2
    echo "postgres://user:pass@localhost/db?host=/var/run/postgresql)" >&2
    exit 2
fi
SIDE_BY_SIDE_NODES="${1:-20}" SIDE_BY_SIDE_SERVERS="$servers" exec cargo test --locked --release \
    --test integration side_by_side::side_by_side_enrollment -- --ignored --exact --nocapture
