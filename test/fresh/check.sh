#!/bin/sh
# make fresh-check: proves the README's two commands on a brand-new Debian 12.
#
# Builds a bare Debian 12 root (debootstrap --variant=minbase bookworm; cached
# as build/fresh/bookworm-minbase.tar and unpacked afresh on every run), copies
# `git archive HEAD` into it at /src/lookout with no ../shared beside it, and in
# a chroot (with /proc, /sys and /dev mounted, unmounted again on every exit
# path) runs, as a new user would:
#   1. apt-get install make        (a bare Debian has no make; README says so)
#   2. make run                    until /readyz answers 200, then SIGTERM; the
#                                  agent must exit 0
#   3. make install                then the installed /usr/local/bin/lookout,
#                                  started without -c (it finds the installed
#                                  config), must get ready; `lookout status`
#                                  must exit 0 and name the receivers; after
#                                  SIGTERM it must exit 3 (unreachable);
#                                  make uninstall removes the binary
#   4. make test                   must pass; its summary lines are printed
# Ends with "fresh-check: passed in Ns" or "fresh-check: FAILED (...)".
#
# Needs root (re-runs itself under sudo), a Debian-like host with network access
# to the Debian mirror and the npm registry, and free ports 4317, 4318 and 9464
# (the chroot shares the host's network). Downloaded .deb files are kept in
# build/fresh/apt-archives so that a second run does not fetch them again; they
# are still installed by `make deps` inside the chroot every time.
#
# Env: LOOKOUT_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#      LOOKOUT_DEBIAN_SECURITY (default http://deb.debian.org/debian-security),
#      FRESH_KEEP=1 leaves build/fresh/root in place for a look afterwards.
set -u

# The whole script is one compound command, read before any of it runs, so that
# editing this file during a run (minutes) cannot change what the run does.
{
cd "$(dirname "$0")/../.." || exit 1
# The physical path: /proc/self/mounts and /proc/N/root name mounts and roots by
# it, and the safety checks below compare against them.
REPO=$(pwd -P)

if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "fresh-check: needs root (or sudo)"; exit 1; }
    exec sudo -E sh "$REPO/test/fresh/check.sh" "$@"
fi
case $REPO in
*[[:space:]]*)
    # /proc/self/mounts escapes blanks, so the checks that keep rm -rf out of the
    # mounted /dev and /sys could not see the mounts.
    echo "fresh-check: the repository path must not contain blanks: $REPO"
    exit 1
    ;;
esac

FRESH=$REPO/build/fresh
BASE=$FRESH/bookworm-minbase.tar
ROOT=$FRESH/root
MIRROR=${LOOKOUT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${LOOKOUT_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
LOG=$FRESH/log
START=$(date +%s)

fail() {
    echo "fresh-check: FAILED ($*) after $(($(date +%s) - START))s"
    exit 1
}

# --- mounts, undone on every exit path

MOUNTED=
unmount_all() {
    for m in $MOUNTED; do
        umount -R "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null
    done
    MOUNTED=
}
# Processes whose root is the chroot (a daemon a package started, an agent
# that did not stop) would keep the mounts busy.
kill_in_root() {
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
}
cleanup() {
    [ -d "$ROOT" ] && kill_in_root
    unmount_all
    if [ "${FRESH_KEEP:-0}" != 1 ] && [ -d "$ROOT" ]; then
        # Only ever delete the root once nothing is mounted below it.
        if grep -q " $ROOT/" /proc/self/mounts 2>/dev/null; then
            echo "fresh-check: mounts remain under $ROOT; not deleting it"
        else
            rm -rf "$ROOT"
        fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mount_into() { # mount_into TARGET MOUNT-ARGS...
    t=$1
    shift
    mkdir -p "$t" && mount "$@" "$t" || fail "mount $* $t"
    # Newest first, so that umount goes in reverse order.
    MOUNTED="$t $MOUNTED"
}

# --- the host's tools

[ -r /etc/debian_version ] || fail "needs a Debian or Ubuntu host (debootstrap)"
missing=
for t in debootstrap:debootstrap curl:curl git:git; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"
done
if [ -n "$missing" ]; then
    echo "fresh-check: apt-get install$missing"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends $missing; } > /dev/null || fail "could not install$missing"
fi

for p in 4317 4318 9464; do
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$p/"
    [ $? -eq 7 ] || fail "port $p on 127.0.0.1 is in use; the chroot shares the host's network"
done

mkdir -p "$FRESH" || fail "cannot create $FRESH"
# Leftovers of an interrupted run.
grep -o " $ROOT/[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | while read -r m; do
    umount -R -l "$m" 2>/dev/null
done
# rm -rf must never descend into a bind mount of the host's /dev or /sys.
! grep -q " $ROOT/" /proc/self/mounts || fail "mounts remain under $ROOT; unmount them first"
rm -rf "$ROOT" "$FRESH/base"

# --- the bare Debian 12, once

if [ ! -s "$BASE" ]; then
    echo "fresh-check: debootstrap --variant=minbase bookworm (once; cached as $BASE)"
    debootstrap --variant=minbase bookworm "$FRESH/base" "$MIRROR" > "$FRESH/debootstrap.log" 2>&1 ||
        { tail -n 20 "$FRESH/debootstrap.log"; fail "debootstrap"; }
    tar -C "$FRESH/base" -cf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE" || fail "tar of the base"
    rm -rf "$FRESH/base"
fi
mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$BASE" || fail "unpack $BASE"

# What a Debian 12 installation's apt sources hold.
cat > "$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
EOF
# The host's network setup, which a new machine on the same network has too: name
# lookup, the local CA certificates (a TLS-inspecting egress proxy signs with
# one; ca-certificates adds them to the bundle when make deps installs it), and
# the proxy and Node CA variables of the environment (passed by in_root).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
cp /etc/hosts "$ROOT/etc/hosts" 2>/dev/null
if ls /usr/local/share/ca-certificates/*.crt > /dev/null 2>&1; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
NET_ENV=
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY NODE_EXTRA_CA_CERTS; do
    eval "val=\${$v:-}"
    # shellcheck disable=SC2154  # val is set by the eval
    [ -n "$val" ] && NET_ENV="$NET_ENV $v=$val"
done

# --- the tree: HEAD only, nothing beside it

if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "fresh-check: note: uncommitted changes are not part of the check (it takes HEAD)"
fi
mkdir -p "$ROOT/src/lookout"
git archive --format=tar HEAD | tar -C "$ROOT/src/lookout" -xf - || fail "git archive HEAD"
[ ! -e "$ROOT/src/shared" ] || fail "a ../shared exists beside the copy"

# --- mounts

mount_into "$ROOT/proc" -t proc proc
mount_into "$ROOT/sys" --rbind /sys
mount --make-rslave "$ROOT/sys"
mount_into "$ROOT/dev" --rbind /dev
mount --make-rslave "$ROOT/dev"
mkdir -p "$FRESH/apt-archives/partial"
mount_into "$ROOT/var/cache/apt/archives" --bind "$FRESH/apt-archives"

# in_root SCRIPT: runs SCRIPT with sh inside the chroot, with a clean environment.
in_root() {
    # shellcheck disable=SC2086  # NET_ENV: one word per VAR=value
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $NET_ENV \
        /bin/sh -c "$1"
}

# --- 1. make, which a bare Debian lacks

echo "fresh-check: apt-get install make"
in_root 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q make' \
    > "$LOG.make" 2>&1 || { tail -n 20 "$LOG.make"; fail "apt-get install make"; }

# --- 2. make run: it installs what it lacks, builds, starts; /readyz must answer

echo "fresh-check: make run (until /readyz answers 200)"
# The agent runs in a session of its own so that its process group can be
# signalled as one; the shell inside waits for it and reports make's status.
in_root 'cd /src/lookout && setsid make run > /tmp/make-run.log 2>&1 &
pid=$!
echo $pid > /tmp/make-run.pid
wait $pid
echo $? > /tmp/make-run.status' > /dev/null 2>&1 &
outer=$!
ready=
deadline=$(($(date +%s) + 1500))
while [ "$(date +%s)" -lt "$deadline" ]; do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:9464/readyz)
    if [ "$code" = 200 ]; then ready=1; break; fi
    [ -e "$ROOT/tmp/make-run.status" ] && break
    sleep 1
done
if [ -n "$ready" ]; then
    echo "ok   make run: /readyz answered 200 after $(($(date +%s) - START))s"
    # SIGTERM to the agent alone (make's child), as a service manager would.
    pid=$(cat "$ROOT/tmp/make-run.pid")
    agent=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
    [ -n "$agent" ] || agent=$(pgrep -P "$pid" 2>/dev/null)
    [ -n "$agent" ] && kill -TERM $agent
fi
i=0
while [ ! -e "$ROOT/tmp/make-run.status" ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
if [ ! -e "$ROOT/tmp/make-run.status" ]; then
    pid=$(cat "$ROOT/tmp/make-run.pid" 2>/dev/null) && kill -KILL -- "-$pid" 2>/dev/null
    sleep 1
fi
wait $outer 2>/dev/null
cp "$ROOT/tmp/make-run.log" "$LOG.run" 2>/dev/null
status=$(cat "$ROOT/tmp/make-run.status" 2>/dev/null)
if [ -z "$ready" ]; then
    tail -n 40 "$LOG.run"
    fail "make run: /readyz never answered 200"
fi
if [ "$status" != 0 ]; then
    tail -n 20 "$LOG.run"
    fail "make run: exit status ${status:-unknown} after SIGTERM"
fi
echo "ok   make run: the agent drained and exited 0 on SIGTERM"

# --- 3. make install, the installed binary, lookout status, make uninstall

echo "fresh-check: make install"
in_root 'cd /src/lookout && make install' > "$LOG.install" 2>&1 ||
    { tail -n 20 "$LOG.install"; fail "make install"; }
for f in /usr/local/bin/lookout /usr/local/etc/lookout/lookout.yaml /usr/local/share/man/man8/lookout.8; do
    [ -f "$ROOT$f" ] || fail "make install did not write $f"
done
# From / (no config/ in the working directory), without -c: the installed
# binary must find PREFIX/etc/lookout/lookout.yaml by itself.
in_root 'cd / && exec /usr/local/bin/lookout > /tmp/installed.log 2>&1' > /dev/null 2>&1 &
inst=$!
ready=
i=0
while [ $i -lt 30 ]; do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:9464/readyz)
    [ "$code" = 200 ] && { ready=1; break; }
    kill -0 $inst 2>/dev/null || break
    sleep 1
    i=$((i + 1))
done
if [ -z "$ready" ]; then
    kill $inst 2>/dev/null
    cat "$ROOT/tmp/installed.log" 2>/dev/null | tail -n 20
    fail "the installed lookout never answered /readyz"
fi
in_root '/usr/local/bin/lookout status' > "$LOG.status" 2>&1
rc=$?
# $inst is the subshell running chroot, whose one child is the agent (chroot,
# env and sh exec into it), or, when the shell exec'd chroot as its last
# command, the agent itself: SIGTERM to it, as a service manager would.
agent=$(cat "/proc/$inst/task/$inst/children" 2>/dev/null)
if [ -z "$agent" ] && tr '\0' '\n' < "/proc/$inst/cmdline" 2>/dev/null | head -n 1 |
    grep -qx /usr/local/bin/lookout; then
    agent=$inst
fi
[ -n "$agent" ] && kill -TERM $agent
i=0
while kill -0 $inst 2>/dev/null && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
kill -0 $inst 2>/dev/null && { [ -n "$agent" ] && kill -KILL $agent; fail "the installed lookout did not exit on SIGTERM"; }
wait $inst 2>/dev/null
[ "$rc" = 0 ] || { cat "$LOG.status"; fail "lookout status exited $rc with the agent ready"; }
grep -q otlp "$LOG.status" || { cat "$LOG.status"; fail "lookout status named no otlp receiver"; }
echo "ok   make install: the installed lookout started from its installed config; lookout status exited 0"
in_root '/usr/local/bin/lookout status' > "$LOG.status2" 2>&1
rc=$?
[ "$rc" = 3 ] || { cat "$LOG.status2"; fail "lookout status exited $rc with no agent running (3: unreachable)"; }
in_root 'cd /src/lookout && make uninstall' > "$LOG.uninstall" 2>&1 ||
    { tail -n 20 "$LOG.uninstall"; fail "make uninstall"; }
[ ! -e "$ROOT/usr/local/bin/lookout" ] || fail "make uninstall left /usr/local/bin/lookout"
echo "ok   lookout status exited $rc with no agent; make uninstall removed the binary"

# --- 4. make test, with no ../shared

echo "fresh-check: make test"
# make test prints one line per stage (a failing stage's whole output): all of
# it is shown as it comes.
{ in_root 'cd /src/lookout && make test'; echo $? > "$LOG.test.rc"; } 2>&1 |
    tee "$LOG.test"
rc=$(cat "$LOG.test.rc" 2>/dev/null)
[ "$rc" = 0 ] || fail "make test exit status ${rc:-unknown} (log: $LOG.test)"
grep -q '^test: all stages passed' "$LOG.test" || fail "make test printed no final line (log: $LOG.test)"
echo "fresh-check: passed in $(($(date +%s) - START))s"
exit 0
}
