#!/usr/bin/env bash
# Builds a release tarball of the harness for Linux x86_64:
#   dist/resetkit-harness-<version>-x86_64-unknown-linux-gnu.tar.gz
# holding the binary, the example target files, the target-file reference
# (TARGETS.md), a short README and the licences. A release build takes a few
# minutes; CI does not run this script.
#
# Usage: scripts/dist.sh [OUT_DIR]   (default: dist/)
set -euo pipefail
cd "$(dirname "$0")/.."

triple="x86_64-unknown-linux-gnu"
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "dist.sh: builds the Linux x86_64 tarball and must run on Linux x86_64 (this is $(uname -s)-$(uname -m))" >&2
  exit 2
fi
out_dir="${1:-dist}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
[ -n "$version" ] || { echo "dist.sh: no workspace version in Cargo.toml" >&2; exit 2; }
name="resetkit-harness-${version}-${triple}"

cargo build --release --locked -p resetkit-harness
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
binary="${target_dir:-target}/release/resetkit-harness"
[ -x "$binary" ] || { echo "dist.sh: $binary was not built" >&2; exit 2; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/targets"
install -m 0755 "$binary" "$stage/$name/resetkit-harness"
strip "$stage/$name/resetkit-harness" 2>/dev/null || true
cp harness/TARGETS.md LICENSE-MIT LICENSE-APACHE "$stage/$name/"
cp harness/targets/*.toml "$stage/$name/targets/"
cat > "$stage/$name/README.md" <<README
# resetkit-harness ${version} (${triple})

Checks that a web app's "forgot password" flow works and is safe, from the
outside: forms, the emailed link, races, enumeration, timing.

    ./resetkit-harness init --url http://127.0.0.1:8000/forgot --out target.toml
    ./resetkit-harness run --target target.toml --html report.html --junit junit.xml
    ./resetkit-harness smtp --listen 127.0.0.1:2525 --web 127.0.0.1:8025

Point the app's SMTP settings at the harness (plain SMTP, no TLS:
127.0.0.1:2525 by default). Exit codes: 0 every MUST holds, 1 a MUST
failed, 2 the harness could not run (bad file, app not answering).
Reports show reset tokens as fingerprints (tok#...) unless --reveal-tokens.

TARGETS.md describes every key of a target file and has complete files for
Django-, Devise-, Laravel- and ASP.NET-Identity-shaped apps. targets/ holds
the files for resetkit's own example apps (they start the apps from a
resetkit source tree with cargo; as examples of [app] and [[accounts]]).

Needs glibc and OpenSSL 3 (libssl3), as on Debian 12 / Ubuntu 22.04 or newer.
Licensed under MIT or Apache-2.0 (LICENSE-MIT, LICENSE-APACHE).
README

mkdir -p "$out_dir"
tarball="$out_dir/$name.tar.gz"
tar -C "$stage" -czf "$tarball" "$name"
echo "$tarball"
tar -tzvf "$tarball"
