#!/usr/bin/env bash
# Builds helm for the chart tests (helm lint, helm template) from its official Go module. Builds
# only when missing from a version-keyed cache, so only the first run pays the two minutes.
# helm's go.mod has no replace directives, so `go install pkg@version` builds it with the module's
# own go.sum — no wrapper module needed. The -X flags are those of helm's Makefile: without them
# `helm version` says "v3.22" and the chart's default .Capabilities.KubeVersion is v1.20.
# Prints ONLY the binary's directory on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37 # helm v3.22.0 builds against client-go v0.37 (its Makefile: major 0+1, minor 37)
out="${KEYHOLD_CACHE_DIR:-$HOME/.cache/keyhold}/helm/$HELM_VERSION"

. scripts/lib/go-cache.sh
require_go helm-build "Go >= 1.25 is needed to build helm for the chart tests"
lock_cache "$out"

if [ ! -x "$out/helm" ]; then
  echo "helm-build: building helm $HELM_VERSION into $out (the first build takes a few minutes)" >&2
  start=$SECONDS
  tmp=$(mktemp -d "$out/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_K8S_MINOR"
  done
  # GOBIN to a temp dir, renamed only after the binary reports the expected version, so a killed
  # build never leaves a half-written binary and an -X that hit nothing fails here. GOWORK=off: a
  # go.work elsewhere must not reach in. GOFLAGS='': a -mod=… would not apply to pkg@version.
  GOBIN="$tmp" GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  version=$("$tmp/helm" version --short 2>&1 || true)
  if [[ "$version" != "$HELM_VERSION"* ]]; then
    echo "helm-build: helm reports '$version', expected '$HELM_VERSION'" >&2
    exit 1
  fi
  mv -f "$tmp/helm" "$out/helm"
  echo "helm-build: helm built in $((SECONDS - start)) s" >&2
fi

echo "$out"
