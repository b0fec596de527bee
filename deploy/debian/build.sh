#!/usr/bin/env bash
# Builds the Debian package (target/debian/latchkey_<version>-1_<arch>.deb) with cargo-deb.
#
#   deploy/debian/build.sh                   release: cargo build --release, then the package
#   deploy/debian/build.sh --profile dev     the debug binary already in target/debug (what CI
#                                            built for its tests), no build: seconds, not the
#                                            7 minutes of a release build on 2 cores
#   deploy/debian/build.sh --no-build        the release binary already in target/release
#
# cargo-deb cannot run commands, so this script runs the binary first to write what the package
# carries besides it into target/deb-assets/: the man pages (`latchkey man --dir`: latchkey.1
# and one per subcommand, which its SUBCOMMANDS section names) and the bash, zsh
# and fish completions (`latchkey completions SHELL`). The assets in Cargo.toml's
# [package.metadata.deb] name the binary as target/release/latchkey, which cargo-deb rewrites to
# the selected profile's folder (target/debug for --profile dev). cargo-deb gzips the man page.
# Installs cargo-deb (pinned) if missing. Extra arguments go to `cargo deb` (-o DIR, ...).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CARGO_DEB_VERSION=3.8.0

PROFILE=release
BUILD=1
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --profile=*) PROFILE=${1#--profile=}; shift ;;
    --no-build) BUILD=0; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
case "$PROFILE" in
  dev|debug) PROFILE=dev; DIR=debug; BUILD=0 ;;
  *) DIR=$PROFILE ;;
esac
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/$DIR/latchkey"

if [ "$(cargo deb --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_DEB_VERSION" ]; then
  echo "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi
command -v dpkg-shlibdeps >/dev/null || { apt-get update -qq && apt-get install -y -qq dpkg-dev >/dev/null; }

if [ "$BUILD" = 1 ]; then
  cargo build --locked --profile "$PROFILE" --bin latchkey
fi
[ -x "$BIN" ] || { echo "FATAL: $BIN is missing: build it first (cargo build --locked --profile $PROFILE)" >&2; exit 1; }

ASSETS="$ROOT/target/deb-assets"
rm -rf "$ASSETS"
mkdir -p "$ASSETS"
"$BIN" man --dir "$ASSETS/man"
"$BIN" completions bash > "$ASSETS/latchkey.bash"
"$BIN" completions zsh > "$ASSETS/_latchkey"
"$BIN" completions fish > "$ASSETS/latchkey.fish"
for f in man/latchkey.1 man/latchkey-serve.1 latchkey.bash _latchkey latchkey.fish; do
  [ -s "$ASSETS/$f" ] || { echo "FATAL: $BIN wrote nothing for $f" >&2; exit 1; }
done
grep -q '^\.TH' "$ASSETS/man/latchkey.1" || { echo "FATAL: '$BIN man' did not print a roff man page" >&2; exit 1; }

# The dev profile draws a warning from cargo-deb ("cargo-deb is for making releases"): that
# package is CI's check of the packaging, not a release; releases use the release profile.
cargo deb --no-build --locked --profile "$PROFILE" "${ARGS[@]}"
