#!/usr/bin/env bash
# Fetch the OpenID provider the OIDC end-to-end test (integration/oidc.rs)
# signs people in with: the npm package `oidc-provider` (OpenID Certified),
# pinned, installed into a per-version directory under target/.
#
# Usage: .ci/fetch-oidc-provider.sh
# Env:   OIDC_PROVIDER_CACHE_DIR  cache root (default: <repo>/target/oidc-provider)
#
# Result: $OIDC_PROVIDER_CACHE_DIR/oidc-provider-<V>/node_modules/oidc-provider;
# that directory (oidc-provider-<V>) is printed on stdout, logs go to stderr.
# Idempotent: a directory whose marker says it was verified is left alone.
# Needs node >= 20.19 (Debian's nodejs 20 works); no install scripts are run.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${OIDC_PROVIDER_CACHE_DIR:-$repo_root/target/oidc-provider}"
VERSION=9.13.3

log() { echo "fetch-oidc-provider: $*" >&2; }

dest="$cache_root/oidc-provider-$VERSION"
if [[ -f "$dest/.verified" && -d "$dest/node_modules/oidc-provider" ]]; then
  log "oidc-provider $VERSION already present in $dest"
  echo "$dest"
  exit 0
fi
mkdir -p "$dest"
cd "$dest"
[[ -f package.json ]] || echo '{"name":"clawscale-oidc-idp","private":true,"type":"module"}' > package.json
log "installing oidc-provider@$VERSION"
npm install --no-audit --no-fund --ignore-scripts --save-exact "oidc-provider@$VERSION" >&2
node -e "import('oidc-provider').then(() => process.exit(0))"
touch .verified
log "oidc-provider $VERSION ready in $dest"
echo "$dest"
