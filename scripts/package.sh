#!/usr/bin/env bash
# Builds the xdpacct .deb and .rpm:
#   target/packages/xdpacct_<version>_amd64.deb
#   target/packages/xdpacct-<version>.x86_64.rpm
# Installs cargo-deb and cargo-generate-rpm (cargo install --locked) when
# missing, builds the release binary, writes the third-party licence notices,
# then packages without rebuilding. Needs dpkg-dev (dpkg-shlibdeps) and
# binutils (strip); `rpm` only to inspect the result.
#
# usage: scripts/package.sh [--no-build]   (--no-build: reuse target/release/xdpacct)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

need_tool() { # cargo subcommand, crate
  if ! cargo "$1" --version >/dev/null 2>&1; then
    echo "package.sh: installing $2 (once; takes a few minutes)" >&2
    cargo install --locked "$2"
  fi
}
for t in dpkg-shlibdeps:dpkg-dev strip:binutils python3:python3; do
  command -v "${t%%:*}" >/dev/null || {
    echo "package.sh: ${t%%:*} missing: apt-get install ${t#*:}" >&2; exit 1; }
done
need_tool deb cargo-deb
need_tool generate-rpm cargo-generate-rpm

meta=$(cargo metadata --format-version 1 --no-deps)
version=$(python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["version"] for p in m["packages"] if p["name"]=="xdpacct"))' <<<"$meta")
target_dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta")
rel="$target_dir/release"
gen="$rel/packaging"
out="$target_dir/packages"

if ((build)); then
  cargo build --release -p xdpacct --bin xdpacct
fi
[ -x "$rel/xdpacct" ] || { echo "package.sh: $rel/xdpacct missing (build first)" >&2; exit 1; }

mkdir -p "$gen" "$out"
python3 packaging/third_party_licenses.py "$gen/THIRD-PARTY-LICENSES"
# cargo-deb strips its own copy (--strip); cargo-generate-rpm does not strip.
cp "$rel/xdpacct" "$gen/xdpacct"
strip --strip-debug "$gen/xdpacct"

rm -f "$target_dir"/debian/xdpacct_*.deb "$target_dir"/generate-rpm/xdpacct-*.rpm
# The workspace also holds the bench generator, which is never packaged:
# cargo-deb takes the package by name; cargo-generate-rpm's -p is a crate
# directory, and without it it packages the root crate (xdpacct).
cargo deb -p xdpacct --no-build --strip --no-separate-debug-symbols
cargo generate-rpm

deb=$(ls "$target_dir"/debian/xdpacct_"$version"*_amd64.deb)
rpm=$(ls "$target_dir"/generate-rpm/xdpacct-"$version"*.x86_64.rpm)
cp "$deb" "$out/xdpacct_${version}_amd64.deb"
cp "$rpm" "$out/xdpacct-${version}.x86_64.rpm"
ls -l "$out/xdpacct_${version}_amd64.deb" "$out/xdpacct-${version}.x86_64.rpm"
