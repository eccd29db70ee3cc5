#!/bin/sh
# Offline checks of the service files (no launchd or running systemd needed):
# the LaunchAgent plist is well-formed and says what docs/service.md says, the
# systemd unit passes `systemd-analyze verify` (where installed) and has the
# restart/stop/reload settings, both start the same binary and config, stop
# timeouts exceed shutdown_timeout, the scripts pass `sh -n` and shellcheck
# (where installed), and install.sh --dry-run prints the expected commands for
# Linux and macOS without changing anything.
# Ends with "launchd: N passed, N failed"; exit status non-zero on any failure.

cd "$(dirname "$0")" || exit 1

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND, counts it, shows its output on failure.
check() {
    name=$1
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        printf '%s\n' "$out" | sed 's/^/     /'
    fi
}

# plistlib is in the standard library: any python3 will do, /usr/bin/python3 first.
PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import plistlib' >/dev/null 2>&1; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    check "python3 found" false
    echo "launchd: $passed passed, $failed failed"
    exit 1
fi

# py SNIPPET: runs a Python snippet that exits non-zero and prints why on
# failure; an exception is one line, not a trace.
py() {
    "$PY" -c '
import sys
try:
    exec(sys.argv[1], {})
except SystemExit:
    raise
except Exception as e:
    print("%s: %s" % (type(e).__name__, e))
    sys.exit(1)
' "$1"
}

# Shared preamble: the plist, the unit's [Service] keys (repeatable keys keep
# every value), and shutdown_timeout in seconds from config/lookout.yaml (its
# default, 5s, when the file or key is missing).
LOAD='
import plistlib, re, sys
P = plistlib.load(open("com.lookout.agent.plist", "rb"))
U = {}
section = None
for line in open("lookout.service"):
    line = line.strip()
    if not line or line[0] in "#;":
        continue
    if line.startswith("["):
        section = line.strip("[]")
        continue
    k, _, v = line.partition("=")
    U.setdefault((section, k.strip()), []).append(v.strip())
def svc(k):
    return U.get(("Service", k), [None])[-1]
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
def seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip().strip(chr(34) + chr(39)))  # quotes
    if m is None:
        raise ValueError("cannot read duration %r" % text)
    return float(m.group(1)) * UNITS[m.group(2) or "s"]
shutdown = 5.0
try:
    for line in open("../config/lookout.yaml"):
        m = re.match(r"shutdown_timeout:\s*(\S+)", line)
        if m:
            shutdown = seconds(m.group(1))
except FileNotFoundError:
    pass
bad = []
def done():
    print("\n".join(bad))
    sys.exit(1 if bad else 0)
'

# --- launchd plist
check "plist is well-formed (plistlib)" py "
import plistlib
plistlib.load(open('com.lookout.agent.plist', 'rb'))
"

if command -v xmllint >/dev/null 2>&1; then
    check "plist is well-formed XML (xmllint)" xmllint --noout com.lookout.agent.plist
else
    echo "skip xmllint (not installed)"
fi

check "plist: label, program, RunAtLoad, KeepAlive SuccessfulExit false, ProcessType" py "$LOAD
want = {
    'Label': 'com.lookout.agent',
    'ProgramArguments': ['/usr/local/bin/lookout', '-c', '/usr/local/etc/lookout/lookout.yaml'],
    'RunAtLoad': True,
    'KeepAlive': {'SuccessfulExit': False},
}
for k, v in want.items():
    if P.get(k) != v:
        bad.append('%s is %r, want %r' % (k, P.get(k), v))
if P.get('ProcessType') not in ('Background', 'Adaptive'):
    bad.append('ProcessType is %r' % P.get('ProcessType'))
done()
"

check "plist: logs to ~/Library/Logs/lookout.log (install.sh substitutes ~)" py "$LOAD
for k in ('StandardErrorPath', 'StandardOutPath'):
    if P.get(k) != '~/Library/Logs/lookout.log':
        bad.append('%s is %r' % (k, P.get(k)))
if '<string>~/' not in open('install.sh').read():
    bad.append('install.sh does not rewrite <string>~/')
done()
"

check "plist ExitTimeOut and unit TimeoutStopSec exceed shutdown_timeout" py "$LOAD
if not P.get('ExitTimeOut', 20) > shutdown:
    bad.append('plist ExitTimeOut %r <= shutdown_timeout %gs' % (P.get('ExitTimeOut', 20), shutdown))
stop = svc('TimeoutStopSec')
if stop is None or not seconds(stop) > shutdown:
    bad.append('unit TimeoutStopSec %r <= shutdown_timeout %gs' % (stop, shutdown))
done()
"

# --- systemd unit
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify wants ExecStart's binary to exist: point it at a stub. It exits 0
    # on unknown keys and only prints them, so any output is a failure.
    verify_unit() {
        d=$(mktemp -d "${TMPDIR:-/tmp}/lookout-check.XXXXXX") || return 1
        printf '#!/bin/sh\nexit 0\n' > "$d/lookout"
        chmod +x "$d/lookout"
        sed "s|/usr/local/bin/lookout|$d/lookout|" lookout.service > "$d/lookout.service"
        o=$(systemd-analyze verify "$d/lookout.service" 2>&1)
        rc=$?
        rm -rf "$d"
        [ -z "$o" ] || printf '%s\n' "$o"
        [ "$rc" -eq 0 ] && [ -z "$o" ]
    }
    check "systemd-analyze verify lookout.service" verify_unit
else
    echo "skip systemd-analyze verify (not installed)"
fi

check "unit: Type, ExecStart, ExecReload, Restart, user, RuntimeDirectory, WantedBy" py "$LOAD
want = {
    'Type': 'simple',
    'ExecStart': '/usr/local/bin/lookout -c /usr/local/etc/lookout/lookout.yaml',
    'ExecReload': '/bin/kill -HUP \$MAINPID',
    'Restart': 'on-failure',
    'RuntimeDirectory': 'lookout',
}
for k, v in want.items():
    if svc(k) != v:
        bad.append('%s=%s, want %s' % (k, svc(k), v))
if svc('DynamicUser') != 'yes' and svc('User') in (None, '', 'root'):
    bad.append('runs as root: set DynamicUser=yes or User=')
if U.get(('Install', 'WantedBy')) != ['multi-user.target']:
    bad.append('WantedBy is not multi-user.target')
done()
"

check "plist and unit start the same binary with the same config" py "$LOAD
if P['ProgramArguments'] != svc('ExecStart').split():
    bad.append('%r != %r' % (P['ProgramArguments'], svc('ExecStart')))
done()
"

# --- scripts
for f in install.sh check.sh; do
    check "sh -n $f" sh -n "$f"
done
if command -v shellcheck >/dev/null 2>&1; then
    check "shellcheck install.sh check.sh" shellcheck -s sh install.sh check.sh
else
    echo "skip shellcheck (not installed)"
fi

# --- install.sh --dry-run, with `uname` faked to pick the platform. Prefix and
# HOME are fresh temporary directories, so "changes nothing" is checkable.
T=$(mktemp -d "${TMPDIR:-/tmp}/lookout-check.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/Linux" "$T/Darwin" "$T/home"
repo=$(cd .. && pwd)
for os in Linux Darwin; do
    printf '#!/bin/sh\necho %s\n' "$os" > "$T/$os/uname"
    chmod +x "$T/$os/uname"
done

# dry OS WANT... -- ARGS...: runs install.sh --dry-run on OS with ARGS; every
# WANT must be a line of its output; the prefix and HOME must stay empty.
dry() {
    os=$1
    shift
    wants=
    while [ "$1" != -- ]; do
        wants="$wants$1
"
        shift
    done
    shift
    o=$(HOME="$T/home" PATH="$T/$os:$PATH" sh ./install.sh --dry-run --prefix "$T/pfx" "$@" 2>&1)
    rc=$?
    ok=0
    [ "$rc" -eq 0 ] || { echo "exit status $rc"; ok=1; }
    while IFS= read -r w; do
        [ -n "$w" ] || continue
        printf '%s\n' "$o" | grep -qxF -- "$w" || { echo "missing line: $w"; ok=1; }
    done <<EOF
$wants
EOF
    if [ -e "$T/pfx" ] || [ -n "$(ls -A "$T/home")" ]; then
        echo "the dry run created files"
        ok=1
    fi
    [ "$ok" -eq 0 ] || printf -- '--- output:\n%s\n' "$o"
    return "$ok"
}

check "install.sh --dry-run (Linux): checks the config, renders unit, enables, restarts" dry Linux \
    "+ $T/pfx/bin/lookout --check-config -c $T/pfx/etc/lookout/lookout.yaml" \
    "+ systemctl daemon-reload" \
    "+ systemctl enable lookout.service" \
    "+ systemctl restart lookout.service" \
    "dry run: nothing was changed" --

uid=$(id -u)
check "install.sh --dry-run (macOS): renders plist, bootstraps gui/UID" dry Darwin \
    "+ mkdir -p $T/home/Library/LaunchAgents $T/home/Library/Logs" \
    "+ plutil -lint $T/home/Library/LaunchAgents/com.lookout.agent.plist" \
    "+ launchctl bootout gui/$uid/com.lookout.agent" \
    "+ launchctl bootstrap gui/$uid $T/home/Library/LaunchAgents/com.lookout.agent.plist" \
    "dry run: nothing was changed" --

check "install.sh --dry-run --uninstall (Linux): disables, removes the unit" dry Linux \
    "+ systemctl disable --now lookout.service" \
    "+ rm -f /etc/systemd/system/lookout.service" \
    "+ systemctl daemon-reload" -- \
    --uninstall

check "install.sh --dry-run --uninstall --purge (macOS): boots out, removes plist and log" dry Darwin \
    "+ launchctl bootout gui/$uid/com.lookout.agent" \
    "+ rm -f $T/home/Library/LaunchAgents/com.lookout.agent.plist" \
    "+ rm -f $T/home/Library/Logs/lookout.log" -- \
    --uninstall --purge

# The sed script must put the prefix into the unit (shown in the dry run).
check "install.sh --dry-run (Linux): unit gets the prefix" dry Linux \
    "+ sed -e 's|/usr/local/|$T/pfx/|g' $repo/launchd/lookout.service > /etc/systemd/system/lookout.service" --

# refuses ARGS...: each argument is one bad command line (split on spaces) that
# install.sh must reject.
refuses() {
    for a in "$@"; do
        # shellcheck disable=SC2086  # split "--prefix rel" into two words
        if HOME="$T/home" PATH="$T/Linux:$PATH" sh ./install.sh --dry-run $a >/dev/null 2>&1; then
            echo "accepted: $a"
            return 1
        fi
    done
}
check "install.sh refuses a relative --prefix, a home --prefix on Linux, a stray --purge" \
    refuses "--prefix rel" "--prefix /home/u/.local" "--purge" "--bogus"

# --- make install into a staging root (DESTDIR), as a packager would, then
# what the service files start must be what it wrote.
LOOKOUT_BIN_BUILT=$repo/${LOOKOUT_BUILD_DIR:-build}/lookout
R=$T/root
mk() {
    make -C "$repo" --no-print-directory "$@" PREFIX=/usr/local DESTDIR="$R"
}
if [ -x "$LOOKOUT_BIN_BUILT" ]; then
    check "make install DESTDIR=… PREFIX=/usr/local" mk install

    check "installed: binary 0755, config 0644, man page; the plist and unit start them" py "$LOAD
import os, stat
R = '$R'
def mode(p):
    return stat.S_IMODE(os.stat(R + p).st_mode)
for p, m in (('/usr/local/bin/lookout', 0o755), ('/usr/local/etc/lookout/lookout.yaml', 0o644),
             ('/usr/local/share/man/man8/lookout.8', 0o644)):
    if not os.path.isfile(R + p):
        bad.append('missing ' + p)
    elif mode(p) != m:
        bad.append('%s has mode %o, want %o' % (p, mode(p), m))
args = P['ProgramArguments']
unit = svc('ExecStart').split()
for what, a in (('plist', args), ('unit', unit)):
    if not os.access(R + a[0], os.X_OK):
        bad.append('%s starts %s, which make install did not write' % (what, a[0]))
    if a[1:2] != ['-c'] or not os.path.isfile(R + a[2]):
        bad.append('%s reads %r, which make install did not write' % (what, a[1:]))
done()
"

    check "the installed binary validates the installed config" \
        "$R/usr/local/bin/lookout" --check-config -c "$R/usr/local/etc/lookout/lookout.yaml"

    keep_config() {
        echo "# edited by the user" >> "$R/usr/local/etc/lookout/lookout.yaml"
        mk install > /dev/null || return 1
        tail -n 1 "$R/usr/local/etc/lookout/lookout.yaml" | grep -qx "# edited by the user" ||
            { echo "make install replaced an existing config"; return 1; }
    }
    check "make install again keeps an edited config" keep_config

    # A kept config whose ${VAR}s only the service's environment sets (the
    # unit's lookout.env): a reinstall warns, and installs.
    keep_env_config() {
        c=$R/usr/local/etc/lookout/lookout.yaml
        cp "$c" "$T/kept.yaml"
        # shellcheck disable=SC2016  # a ${VAR} for lookout, not for sh
        printf 'exporters:\n  otlp:\n    endpoint: ${LOOKOUT_CHECK_UNSET_VAR}\n' >> "$c"
        o=$(env -u LOOKOUT_CHECK_UNSET_VAR make -C "$repo" --no-print-directory install \
            PREFIX=/usr/local DESTDIR="$R" 2>&1)
        rc=$?
        cp "$T/kept.yaml" "$c"
        [ "$rc" -eq 0 ] || { printf '%s\n' "$o"; echo "make install failed on a kept config"; return 1; }
        printf '%s\n' "$o" | grep -q "warning: .*does not validate here" ||
            { printf '%s\n' "$o"; echo "no warning"; return 1; }
    }
    check "make install keeps a config that needs the service's environment, with a warning" keep_env_config

    uninstall_keeps() {
        mk uninstall > /dev/null || return 1
        for f in bin/lookout share/man/man8/lookout.8; do
            [ ! -e "$R/usr/local/$f" ] || { echo "$f still there"; return 1; }
        done
        [ -f "$R/usr/local/etc/lookout/lookout.yaml" ] || { echo "the config was removed"; return 1; }
        mk uninstall PURGE=1 > /dev/null || return 1
        [ ! -e "$R/usr/local/etc/lookout" ] || { echo "PURGE=1 left etc/lookout"; return 1; }
    }
    check "make uninstall removes binary and man page, keeps the config; PURGE=1 removes it" uninstall_keeps

    refuse_relative() {
        if make -C "$repo" --no-print-directory install PREFIX=rel DESTDIR="$R" > /dev/null 2>&1; then
            echo "accepted PREFIX=rel"
            return 1
        fi
    }
    check "make install refuses a relative PREFIX" refuse_relative
else
    check "make install: $LOOKOUT_BIN_BUILT is built (make)" false
fi

# --- the man page
if command -v groff >/dev/null 2>&1; then
    check "man page: groff -man -ww finds nothing" sh -c "o=\$(groff -man -ww -z ../docs/lookout.8 2>&1); [ -z \"\$o\" ] || { echo \"\$o\"; exit 1; }"
else
    echo "skip groff (not installed)"
fi

echo "launchd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
