#!/usr/bin/env bash
# Builds kube-apiserver and etcd for the Kubernetes tests from the official Go modules, through the
# wrapper modules in test/cluster/ (neither Debian nor npm ships a usable kube-apiserver). Builds
# only what is missing from a version-keyed cache, so only the first run pays the several minutes.
# Prints ONLY the binaries' directory on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=v1.37.2 # keep in step with test/cluster/apiserver/go.mod
ETCD_VERSION=3.7.3  # keep in step with test/cluster/etcd/go.mod
out="${KEYHOLD_CACHE_DIR:-$HOME/.cache/keyhold}/k8s/$K8S_VERSION"

. scripts/lib/go-cache.sh
require_go k8s-build "Go >= 1.26 is needed to build kube-apiserver and etcd for the Kubernetes tests"
lock_cache "$out"

tmp=""
trap '[ -z "$tmp" ] || rm -f "$tmp"' EXIT

# build NAME MODULE_DIR PACKAGE EXPECTED_VERSION_TEXT [go build flags...]
# Builds into a temporary name and renames only after the binary reports the expected version, so
# a killed build never leaves a half-written binary, and an ldflags -X that silently hit nothing
# (the linker ignores unknown variables) fails here rather than in a test.
build() {
  local name=$1 dir=$2 pkg=$3 expect=$4
  shift 4
  [ -x "$out/$name" ] && return 0
  echo "k8s-build: building $name into $out (the first build takes several minutes)" >&2
  local start=$SECONDS
  tmp="$out/.$name.tmp.$$"
  # -mod=readonly: the committed go.sum is authoritative. GOWORK=off: a go.work elsewhere must not
  # reach in. -buildvcs=false: the wrapper sits in keyhold's git tree, whose state is irrelevant.
  (cd "$dir" && GOWORK=off CGO_ENABLED=0 go build -mod=readonly -buildvcs=false -trimpath -o "$tmp" "$@" "$pkg") >&2
  local version
  version=$("$tmp" --version 2>&1 || true)
  if [[ "$version" != *"$expect"* ]]; then
    echo "k8s-build: $name reports '$version', expected '$expect'" >&2
    exit 1
  fi
  mv -f "$tmp" "$out/$name"
  tmp=""
  echo "k8s-build: $name built in $((SECONDS - start)) s" >&2
}

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

build kube-apiserver test/cluster/apiserver k8s.io/kubernetes/cmd/kube-apiserver "Kubernetes $K8S_VERSION" \
  -tags selinux,notest -ldflags "$ldflags"
build etcd test/cluster/etcd go.etcd.io/etcd/server/v3 "etcd Version: $ETCD_VERSION" -ldflags "-s -w"

echo "$out"
