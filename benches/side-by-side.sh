#!/bin/sh
# Side-by-side enrollment with real clients: N stock tailscaled 1.96.4, each
# in its own network namespace (the integration harness), run `tailscale up`
# one after another against clawscale; prints each `up` time, the full-mesh
# time, server CPU and RSS, then one `bench side-by-side ...` line.
# Needs root, iproute2 and the clients `.ci/run --setup-only` provisions.
#
#   benches/side-by-side.sh [N]        (default 20)
#
# rscale (crates.io, PostgreSQL) is not run by this script: see the README's
# Performance section for why.
set -eu
cd "$(dirname "$0")/.."
SIDE_BY_SIDE_NODES="${1:-20}" exec cargo test --locked --release --test integration \
    side_by_side::side_by_side_enrollment -- --ignored --exact --nocapture
