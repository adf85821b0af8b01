#!/usr/bin/env bash
# CI check of deploy/Containerfile with podman, without compiling Rust in
# the image: builds the `runtime` stage around a prebuilt binary
# (BINARY_STAGE=prebuilt) on a Debian bookworm base made by mmdebstrap
# (this machine reaches the Debian mirror but no container registry), then:
# the binary answers --version as the unprivileged user; the image carries
# the user, ports and HEALTHCHECK; a container serving from its built-in
# config turns healthy through that HEALTHCHECK (`clawscale healthcheck`).
#
# Usage: deploy/container-check.sh [BINARY]   (default target/debug/clawscale)
# Needs root, podman, runc and mmdebstrap. The podman flags below are what
# this CI machine needs: crun refuses its hybrid cgroup setup (runc with
# cgroupfs does not), and the default container rlimits exceed its hard
# limits.
set -Eeuo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
binary="${1:-$target_dir/debug/clawscale}"
base=localhost/clawscale-ci-base:bookworm
image=localhost/clawscale:ci
ctr="clawscale-ci-$$"

podman=(podman --runtime runc --cgroup-manager cgroupfs)
run_opts=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network none)

[[ -x "$binary" ]] || { echo "no binary at $binary (cargo build first)" >&2; exit 1; }

ctx="$(mktemp -d)"
cleanup() {
  "${podman[@]}" rm -f "$ctr" >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT

if ! "${podman[@]}" image exists "$base"; then
  echo "making $base with mmdebstrap"
  mmdebstrap --quiet --variant=minbase bookworm - http://deb.debian.org/debian \
    | "${podman[@]}" import - "$base"
fi

# The context `prebuilt` expects: the binary, and the files `runtime` copies.
install -m 0755 "$binary" "$ctx/clawscale"
mkdir -p "$ctx/deploy"
cp "$repo_root/deploy/config.container.yaml" "$ctx/deploy/"

"${podman[@]}" build --quiet --isolation chroot --format docker \
  --file "$repo_root/deploy/Containerfile" --target runtime \
  --build-arg BINARY_STAGE=prebuilt --build-arg RUNTIME_IMAGE="$base" \
  --tag "$image" "$ctx"

version="$("${podman[@]}" run --rm "${run_opts[@]}" "$image" --version)"
echo "in the image: $version"
[[ "$version" == "clawscale $(grep -m1 '^version' "$repo_root/Cargo.toml" | cut -d'"' -f2)" ]]

meta="$("${podman[@]}" image inspect --format \
  '{{.Config.User}}|{{json .Config.ExposedPorts}}|{{json .HealthCheck.Test}}' "$image")"
echo "image config: $meta"
[[ "$meta" == clawscale:clawscale\|* ]]
[[ "$meta" == *'"8080/tcp"'* && "$meta" == *'"3478/udp"'* ]]
[[ "$meta" == *'"clawscale","healthcheck"'* ]]
[[ "$("${podman[@]}" run --rm "${run_opts[@]}" --entrypoint id "$image" -u)" == 10001 ]]

"${podman[@]}" run -d --name "$ctr" "${run_opts[@]}" "$image" >/dev/null
for _ in $(seq 50); do
  "${podman[@]}" healthcheck run "$ctr" >/dev/null 2>&1 && break
  sleep 0.2
done
if ! "${podman[@]}" healthcheck run "$ctr"; then
  "${podman[@]}" logs "$ctr" >&2
  echo "the container did not become healthy" >&2
  exit 1
fi
echo "container healthy: $("${podman[@]}" inspect --format '{{.State.Health.Status}}' "$ctr")"
