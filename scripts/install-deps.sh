#!/usr/bin/env bash
# Installs the C libraries sensgate links (libcurl with OpenSSL, libcrypto) and pkg-config, if they are missing;
# with --tests also PostgreSQL, for the store tests (they start a throwaway cluster of their own, never the system's).
#   scripts/install-deps.sh [--tests]
set -euo pipefail
packages=(libcurl4-openssl-dev libssl-dev pkg-config)
[ "${1:-}" = "--tests" ] && packages+=(postgresql)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi
