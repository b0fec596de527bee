#!/usr/bin/env bash
# The Debian package, for real on this machine: builds it (deploy/debian/build.sh, from the
# debug binary CI already built), installs it with dpkg -i, checks that every file is where it
# belongs, verifies the systemd unit, then starts the installed binary the way the unit would
# (systemd is not running here): its ExecStart line read from the installed unit, as the
# latchkey user, with the StateDirectory made as systemd makes it, in a mount namespace that
# copies the unit's ProtectSystem=strict, PrivateTmp and ProtectHome, with no new privileges and
# no capabilities. Waits for /readyz, reads /metrics on the metrics listener, stops it with
# SIGTERM and purges the package. The machine is left as it was (trap), the latchkey user and
# /var/lib/latchkey included. Used by .ci/run.
#
#   bash deploy/test-deb.sh [--profile dev|release]     (default dev: target/debug/latchkey)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=dev
[ "${1:-}" = --profile ] && PROFILE=$2

fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "deb: $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i, a system user)"
if dpkg-query -W -f='${Status}' latchkey 2>/dev/null | grep -q 'ok installed'; then
  fail "a latchkey package is already installed here; this test would replace and purge it"
fi

WORK=$(mktemp -d)
SERVER=""
INSTALLED=0
HAD_USER=0; getent passwd latchkey >/dev/null && HAD_USER=1
HAD_GROUP=0; getent group latchkey >/dev/null && HAD_GROUP=1
HAD_STATE=0; [ -e /var/lib/latchkey ] && HAD_STATE=1
HAD_ETC=0; [ -e /etc/latchkey ] && HAD_ETC=1
cleanup() {
  set +e
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill -KILL "$SERVER"; wait "$SERVER" 2>/dev/null; fi
  [ "$INSTALLED" = 1 ] && dpkg --purge latchkey >/dev/null 2>&1
  [ "$HAD_STATE" = 0 ] && rm -rf /var/lib/latchkey
  [ "$HAD_ETC" = 0 ] && rm -rf /etc/latchkey
  [ "$HAD_USER" = 0 ] && getent passwd latchkey >/dev/null && deluser --quiet --system latchkey >/dev/null 2>&1
  [ "$HAD_GROUP" = 0 ] && getent group latchkey >/dev/null && delgroup --quiet --system latchkey >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

# 1. Build.
bash deploy/debian/build.sh --profile "$PROFILE" -o "$WORK/latchkey.deb" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; fail "deploy/debian/build.sh"; }
DEB="$WORK/latchkey.deb"
[ -f "$DEB" ] || fail "no package at $DEB"
say "built $(dpkg-deb -f "$DEB" Package)_$(dpkg-deb -f "$DEB" Version)_$(dpkg-deb -f "$DEB" Architecture).deb, $(du -h "$DEB" | cut -f1); Depends: $(dpkg-deb -f "$DEB" Depends)"

# 2. Install.
dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; INSTALLED=1; fail "dpkg -i"; }
INSTALLED=1

# 3. The files, where they belong.
dpkg -L latchkey > "$WORK/files"
UNIT=""
for unit in /usr/lib/systemd/system/latchkey.service /lib/systemd/system/latchkey.service; do
  grep -qx "$unit" "$WORK/files" && UNIT=$unit
done
[ -n "$UNIT" ] || fail "no latchkey.service in the package: $(tr '\n' ' ' < "$WORK/files")"
for f in /usr/bin/latchkey /etc/latchkey/latchkey.toml "$UNIT" \
  /usr/share/man/man1/latchkey.1.gz \
  /usr/share/man/man1/latchkey-backup.1.gz \
  /usr/share/man/man1/latchkey-client-create.1.gz \
  /usr/share/bash-completion/completions/latchkey \
  /usr/share/zsh/vendor-completions/_latchkey \
  /usr/share/fish/vendor_completions.d/latchkey.fish; do
  grep -qx "$f" "$WORK/files" || fail "dpkg -L latchkey does not list $f"
  [ -s "$f" ] || fail "$f is listed but missing or empty"
done
dpkg-query -W -f='${Conffiles}\n' latchkey | grep -q '^ /etc/latchkey/latchkey.toml ' \
  || fail "/etc/latchkey/latchkey.toml is not a conffile"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd latchkey) || fail "no latchkey user after install"
[ "$uid" -lt 1000 ] || fail "latchkey is not a system user (uid $uid)"
case "$shell" in */nologin|*/false) ;; *) fail "latchkey's shell is $shell";; esac
[ "$(stat -c '%U:%G %a' /etc/latchkey/latchkey.toml)" = "root:latchkey 640" ] \
  || fail "/etc/latchkey/latchkey.toml is $(stat -c '%U:%G %a' /etc/latchkey/latchkey.toml), not root:latchkey 640"
/usr/bin/latchkey --version | grep -q . || fail "/usr/bin/latchkey --version"
zcat /usr/share/man/man1/latchkey.1.gz | grep -q '^\.TH' || fail "the man page is not roff"
if man -w latchkey >/dev/null 2>&1; then say "man -w latchkey: $(man -w latchkey)"; else say "man finds no pages here (no man-db); the file is in place"; fi
bash -c 'source /usr/share/bash-completion/completions/latchkey && complete -p latchkey' >/dev/null \
  || fail "the bash completion does not define a completion for latchkey"
say "$(wc -l < "$WORK/files") paths installed; unit $UNIT; conffile, system user (uid $uid, $shell), man page, completions in place"

# 4. The unit, statically (systemd-analyze works without a running systemd).
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" >"$WORK/verify.log" 2>&1 || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify $UNIT"; }
  if [ -s "$WORK/verify.log" ]; then cat "$WORK/verify.log" >&2; fail "systemd-analyze verify $UNIT has remarks"; fi
  say "systemd-analyze verify: clean"
  if systemd-analyze security --offline=true "$UNIT" >"$WORK/security.log" 2>&1 || [ -s "$WORK/security.log" ]; then
    score=$(grep -o 'exposure level for latchkey.service: .*' "$WORK/security.log" || true)
    [ -n "$score" ] && say "systemd-analyze security: $score"
  fi
else
  say "SKIPPED systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)"
fi

# 5. Start the installed binary as the unit would.
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
read -r -a CMD <<< "$EXEC"
[ "${CMD[0]}" = /usr/bin/latchkey ] || fail "ExecStart runs ${CMD[0]}, not /usr/bin/latchkey"
USER_=$(sed -n 's/^User=//p' "$UNIT"); [ "$USER_" = latchkey ] || fail "User=$USER_"
STATE=/var/lib/$(sed -n 's/^StateDirectory=//p' "$UNIT")
STATE_MODE=$(sed -n 's/^StateDirectoryMode=//p' "$UNIT")
UMASK=$(sed -n 's/^UMask=//p' "$UNIT")
install -d -o latchkey -g latchkey -m "${STATE_MODE:-0755}" "$STATE"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_free() { python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
# The packaged settings' ports, unless something here already listens there: then others,
# through the environment, which beats the file.
HTTP_PORT=8080 METRICS_PORT=9464
OVERRIDE=()
port_free $HTTP_PORT || { HTTP_PORT=$(free_port); OVERRIDE+=("LATCHKEY_BIND=127.0.0.1:$HTTP_PORT"); }
port_free $METRICS_PORT || { METRICS_PORT=$(free_port); OVERRIDE+=("LATCHKEY_METRICS_BIND=127.0.0.1:$METRICS_PORT"); }
[ ${#OVERRIDE[@]} -gt 0 ] && say "ports of the packaged config taken here; overriding: ${OVERRIDE[*]}"

# systemd gives a service a clean environment with HOME, USER, LOGNAME and SHELL of its user.
RUN=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$home" USER=latchkey
  LOGNAME=latchkey SHELL="$shell" "${OVERRIDE[@]}" "${CMD[@]}")
if command -v setpriv >/dev/null; then
  # NoNewPrivileges=yes, CapabilityBoundingSet= (empty), User=, Group=.
  RUN=(setpriv --reuid=latchkey --regid=latchkey --init-groups --no-new-privs --bounding-set=-all --inh-caps=-all "${RUN[@]}")
else
  RUN=(runuser -u latchkey -- "${RUN[@]}")
fi
# ProtectSystem=strict (everything read-only but the StateDirectory), PrivateTmp=yes,
# ProtectHome=yes, in a mount namespace of its own when this machine allows one.
SANDBOX='set -e
mount --bind "$STATE" "$STATE"
awk "{print \$2}" /proc/self/mounts | sort -u | while read -r m; do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$STATE") continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
for h in /home /root /run/user; do [ -d "$h" ] && mount -t tmpfs -o ro,mode=000 tmpfs "$h"; done
cd "$STATE"
umask "$UMASK"
exec "$@"'
export STATE UMASK
if unshare --mount --propagation private true 2>/dev/null; then
  SANDBOXED="in a mount namespace (ProtectSystem=strict, PrivateTmp, ProtectHome emulated)"
  unshare --mount --propagation private sh -c "$SANDBOX" sandbox "${RUN[@]}" >"$WORK/server.log" 2>&1 &
else
  SANDBOXED="without a mount namespace (unshare is not allowed here)"
  (cd "$STATE" && umask "$UMASK" && exec "${RUN[@]}") >"$WORK/server.log" 2>&1 &
fi
SERVER=$!
BASE="http://127.0.0.1:$HTTP_PORT"
for _ in $(seq 1 300); do
  curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "the installed binary exited at start"; }
  sleep 0.2
done
curl -sf "$BASE/readyz" >/dev/null || { cat "$WORK/server.log" >&2; fail "/readyz did not answer 200 within 60 s"; }
[ "$(ps -o user= -p "$SERVER" | tr -d ' ')" = latchkey ] || fail "the server runs as $(ps -o user= -p "$SERVER"), not latchkey"
say "'$EXEC' as latchkey $SANDBOXED: /readyz 200 on $BASE"

# Its state went into the StateDirectory, owned by latchkey and private to it.
[ -n "$(find "$STATE" -mindepth 1 -maxdepth 1)" ] || fail "nothing was written into $STATE"
others=$(find "$STATE" -mindepth 1 ! -user latchkey | head -3)
[ -z "$others" ] || fail "files in $STATE not owned by latchkey: $others"
readable=$(find "$STATE" -mindepth 1 -type f -perm /o=r | head -3)
[ -z "$readable" ] || fail "files in $STATE readable by others: $readable"

# The packaged log_format is json: one object per line.
head -n 1 "$WORK/server.log" | python3 -c 'import json, sys; json.loads(sys.stdin.readline())' 2>/dev/null \
  || { head -n 3 "$WORK/server.log" >&2; fail "the log is not JSON lines (log_format = \"json\")"; }

# Metrics: on the metrics listener, with the build's info; never on the public one.
METRICS=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics") \
  || { cat "$WORK/server.log" >&2; fail "no /metrics on 127.0.0.1:$METRICS_PORT"; }
printf '%s\n' "$METRICS" | grep -q '^latchkey_build_info{' || fail "/metrics has no latchkey_build_info"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")
[ "$code" = 404 ] || fail "/metrics on the public listener answered $code, not 404"
say "/metrics on 127.0.0.1:$METRICS_PORT: $(printf '%s\n' "$METRICS" | grep -c '^latchkey_') series, $(printf '%s\n' "$METRICS" | grep '^latchkey_build_info{' | head -1); 404 on $BASE"

# 6. SIGTERM (KillSignal=) stops it cleanly, well within TimeoutStopSec.
start=$(date +%s)
kill -TERM "$SERVER"
status=0; wait "$SERVER" || status=$?
SERVER=""
[ "$status" = 0 ] || { tail -n 5 "$WORK/server.log" >&2; fail "exit status $status after SIGTERM"; }
say "SIGTERM: exited 0 in $(( $(date +%s) - start )) s"

# 7. Purge; cleanup then puts back what the test made (user, state) if it was not here before.
dpkg --purge latchkey >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "dpkg --purge latchkey"; }
INSTALLED=0
[ ! -e /usr/bin/latchkey ] && [ ! -e "$UNIT" ] && [ ! -e /etc/latchkey/latchkey.toml ] || fail "files left after dpkg --purge"
say "dpkg --purge: binary, unit and conffile gone"
