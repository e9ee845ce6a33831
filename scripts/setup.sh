#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, npm dependencies, build.
# Safe to run again; does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v softhsm2-util >/dev/null 2>&1 || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need_apt+=(opensc)
command -v p11-kit >/dev/null 2>&1 || need_apt+=(p11-kit)
compgen -G "/usr/lib/*/pkcs11/p11-kit-client.so" >/dev/null || need_apt+=(p11-kit-modules)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# A real OCI registry for the image-attestation tests (test/helpers/registry.ts runs the binary with its own config).
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
# A real PostgreSQL for the storage and replica tests (test/helpers/postgres.ts runs initdb and
# pg_ctl on a temp dir; the packaged cluster is never used).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# The web console's tests drive Debian's Chromium with playwright-core (no browser download).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Under systemd the package enables and starts a registry service on :5000 that the tests never
  # use: turn off what we just installed. (Without systemd, e.g. in containers, policy-rc.d or the
  # missing runlevel already keeps it from starting.)
  if [[ " ${need_apt[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
  # Likewise the packaged PostgreSQL cluster on :5432.
  if [[ " ${need_apt[*]} " == *" postgresql "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now postgresql.service >/dev/null 2>&1 || true
  fi
fi

# Native addons (pkcs11js, better-sqlite3) compile with node-gyp; use the headers the machine's
# Node package ships instead of downloading them.
if [ -d /usr/include/node ] && [ -z "${npm_config_nodedir:-}" ]; then
  export npm_config_nodedir=/usr
fi

stamp=node_modules/.keyhold-install-stamp
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || \
   [ ! -f node_modules/pkcs11js/build/Release/pkcs11.node ] || \
   [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  echo "setup: npm ci" >&2
  log=$(mktemp)
  if ! npm ci --no-audit --no-fund --foreground-scripts >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; exit 1; fi
  rm -f "$log"
  touch "$stamp"
fi

echo "setup: build" >&2
bash scripts/build.sh
