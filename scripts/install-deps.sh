#!/usr/bin/env bash
# Installs what building and testing xdpacct needs on a fresh Debian machine:
# the C toolchain for the XDP program and libbpf, and the real peers the tests
# talk to (tcpreplay, tshark, nfdump, pmacct, prometheus). Idempotent.
set -euo pipefail

PACKAGES=(clang llvm libelf-dev zlib1g-dev pkg-config make gcc python3 iproute2
          tcpreplay tshark nfdump pmacct softflowd prometheus ethtool curl
          systemd rpm dpkg-dev binutils util-linux sqlite3
          postgresql)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: cargo (rustup) is required" >&2; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
