#!/usr/bin/env bash
# Builds cosign for the image-attestation tests from its official Go module (tests sign with a real
# third-party signer; Debian bookworm has no cosign and its skopeo has sigstore disabled). Builds
# only when missing from a version-keyed cache, so only the first run pays the few minutes.
# cosign's go.mod has no replace directives, so `go install pkg@version` builds it directly with the
# module's own go.sum — no wrapper module needed.
# Prints ONLY the binary's directory on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

COSIGN_VERSION=v2.6.5
out="${KEYHOLD_CACHE_DIR:-$HOME/.cache/keyhold}/cosign/$COSIGN_VERSION"

. scripts/lib/go-cache.sh
require_go cosign-build "Go >= 1.25 is needed to build cosign for the image-attestation tests"
lock_cache "$out"

if [ ! -x "$out/cosign" ]; then
  echo "cosign-build: building cosign $COSIGN_VERSION into $out (the first build takes a few minutes)" >&2
  start=$SECONDS
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # GOBIN to a temp dir, renamed only after the binary reports the expected version, so a killed
  # build never leaves a half-written binary. GOWORK=off: a go.work elsewhere must not reach in.
  # GOFLAGS='': a -mod=… in the environment would not apply to pkg@version and makes it fail.
  GOBIN="$tmp" GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w" "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" >&2
  version=$("$tmp/cosign" version 2>&1 || true)
  if [[ "$version" != *"$COSIGN_VERSION"* ]]; then
    echo "cosign-build: cosign reports '$version', expected '$COSIGN_VERSION'" >&2
    exit 1
  fi
  mv -f "$tmp/cosign" "$out/cosign"
  echo "cosign-build: cosign built in $((SECONDS - start)) s" >&2
fi

echo "$out"
