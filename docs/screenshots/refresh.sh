#!/bin/sh
# Copies the pages the README shows from the browser tests' last run
# (target/screenshots/NN-<page>-<width>.png, NN being the step) to docs/screenshots/<page>-<width>.png.
# Run after `cargo test --test browser`.
set -eu
cd "$(dirname "$0")/../.."
shown="
sign-up-desktop applications-empty-phone new-application-errors-desktop
application-created-desktop application-created-phone secret-rotated-desktop
consent-desktop consent-phone authorized-apps-desktop revoke-confirm-phone
totp-setup-desktop recovery-codes-desktop security-passkey-desktop
security-passkey-phone passkey-add-desktop sign-in-passkey-desktop sign-in-passkey-phone
confirm-code-desktop disable-confirm-desktop go-live-confirm-desktop delete-confirm-phone
activity-desktop home-first-steps-desktop revoke-scope-confirm-desktop authorize-sign-in-desktop
"
for page in $shown; do
  latest=$(ls -t target/screenshots/[0-9][0-9]-"$page".png 2>/dev/null | head -n 1)
  if [ -z "$latest" ]; then
    echo "no screenshot of $page in target/screenshots: run cargo test --test browser first" >&2
    exit 1
  fi
  cp "$latest" "docs/screenshots/$page.png"
done
echo "copied $(echo $shown | wc -w) screenshots to docs/screenshots/"
