# Shared by the scripts that build test binaries from Go modules into a version-keyed cache
# (k8s-build.sh, cosign-build.sh). Source it; it defines functions only.

# require_go WHO WHAT: exits with a clear message when `go` is missing.
require_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "$1: 'go' is not on PATH; $2" >&2
    exit 1
  fi
}

# lock_cache DIR: creates DIR and holds an exclusive lock on it for the rest of the script, so
# parallel test runs that call the build at once wait for one build instead of racing it.
lock_cache() {
  mkdir -p "$1"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$1/.lock"
    flock 9
  fi
}
