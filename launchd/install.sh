#!/bin/sh
# Installs lookout's service on top of `make install`: a LaunchAgent on macOS,
# a systemd unit on Linux. `make install-launchd` / `make install-systemd` run
# it after `make install`; `make uninstall-launchd` / `uninstall-systemd` run
# it with --uninstall before `make uninstall`.
#
#   launchd/install.sh [--prefix DIR] [--dry-run]
#   launchd/install.sh --uninstall [--purge] [--prefix DIR] [--dry-run]
#
# Install:
#   1. checks that `make install` put PREFIX/bin/lookout and
#      PREFIX/etc/lookout/lookout.yaml there (default PREFIX: /usr/local) and
#      that the config is valid (`lookout --check-config`),
#   2. macOS: writes ~/Library/LaunchAgents/com.lookout.agent.plist from
#      launchd/com.lookout.agent.plist ("~" and /usr/local replaced, since launchd
#      expands neither) and loads it with `launchctl bootstrap gui/UID`;
#      Linux: writes /etc/systemd/system/lookout.service from launchd/lookout.service
#      (/usr/local replaced) and runs `systemctl enable` then `systemctl restart`
#      (restart rather than `enable --now`, so a reinstall replaces a running
#      older binary).
# Uninstall stops and unloads the service and removes the service file; the
# binary, man page and config are `make uninstall`'s. --purge also removes the
# macOS log.
#
# Every command is printed ("+ ...") before it runs; --dry-run only prints.
# On macOS run it as yourself (the LaunchAgent belongs to your login session).
# sudo is put in front of a command only where it writes to a directory you
# cannot write to (/etc/systemd/system; systemctl as non-root).

set -eu

LABEL=com.lookout.agent
UNIT=lookout.service

here=$(cd "$(dirname "$0")" && pwd)

prefix=/usr/local
dry=
uninstall=
purge=

usage() {
    sed -n '7,8p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --dry-run | -n) dry=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

case $prefix in
/*) ;;
*) die "--prefix must be an absolute path (launchd and systemd need one): $prefix" ;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || die "--prefix / is not supported"
[ -z "$purge" ] || [ -n "$uninstall" ] || die "--purge goes with --uninstall"

bin_dir=$prefix/bin
conf_dir=$prefix/etc/lookout
conf=$conf_dir/lookout.yaml

# --- helpers

# Prints a command the way a shell would read it back: arguments holding
# anything but plain characters are single-quoted.
show() {
    line=+
    for a in "$@"; do
        case $a in
        '' | *[!A-Za-z0-9_./:=@%+,-]*)
            a="'$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'" ;;
        esac
        line="$line $a"
    done
    printf '%s\n' "$line"
}

# run CMD...: prints it, then runs it unless --dry-run.
run() {
    show "$@"
    [ -n "$dry" ] || "$@"
}

# run_ok CMD...: like run, but a failure is reported and not fatal (e.g.
# disabling a service that is not installed).
run_ok() {
    show "$@"
    [ -n "$dry" ] || "$@" || echo "  (that failed; continuing)"
}

# can_write DIR: true when we can create files under DIR (its nearest existing
# ancestor is writable by us).
can_write() {
    d=$1
    while [ ! -e "$d" ]; do d=$(dirname "$d"); done
    [ -w "$d" ]
}

# run_in DIR CMD...: run, with sudo in front when we cannot write under DIR.
run_in() {
    d=$1
    shift
    if can_write "$d"; then run "$@"; else run sudo "$@"; fi
}

# Escapes a string for the replacement side of a sed s||| command.
sed_repl() {
    printf '%s' "$1" | sed 's/[|&\\]/\\&/g'
}

# render TEMPLATE DEST SED_SCRIPT: writes TEMPLATE through sed to DEST (mode
# 0644), through a temporary file moved into place, so DEST is never half written.
render() {
    via=
    can_write "$(dirname "$2")" || via=" (written with sudo)"
    echo "+ sed -e '$3' $1 > $2$via"
    [ -n "$dry" ] && return 0
    tmp=$(mktemp "${TMPDIR:-/tmp}/lookout-install.XXXXXX")
    sed -e "$3" "$1" > "$tmp"
    chmod 0644 "$tmp"
    if can_write "$(dirname "$2")"; then mv "$tmp" "$2"; else sudo mv "$tmp" "$2"; fi
}

# run_ok_in DIR CMD...: run_ok, with sudo when we cannot write under DIR.
run_ok_in() {
    d=$1
    shift
    if can_write "$d"; then run_ok "$@"; else run_ok sudo "$@"; fi
}

done_msg() {
    if [ -n "$dry" ]; then echo "dry run: nothing was changed"; else echo "$1"; fi
}

# --- common steps

check_installed() {
    if [ ! -x "$bin_dir/lookout" ] || [ ! -f "$conf" ]; then
        [ -n "$dry" ] || die "$bin_dir/lookout or $conf missing: run make install PREFIX=$prefix first"
        echo "note: $bin_dir/lookout is not installed yet (make install); a real run stops here"
    fi
    # The unit reads its ${VAR}s from lookout.env (EnvironmentFile=): check the
    # config with them, as the service will see it.
    if [ -r "$conf_dir/lookout.env" ]; then
        echo "+ (set -a; . $conf_dir/lookout.env; $bin_dir/lookout --check-config -c $conf)"
        [ -n "$dry" ] || (
            set -a
            # shellcheck disable=SC1091  # the user's file, not ours to follow
            . "$conf_dir/lookout.env"
            "$bin_dir/lookout" --check-config -c "$conf"
        )
    else
        run "$bin_dir/lookout" --check-config -c "$conf"
    fi
}

# --- macOS: LaunchAgent in the user's gui domain

# Unloads the agent when it is loaded (a dry run prints the command anyway).
# bootout sends SIGTERM and waits for the exit, up to the plist's ExitTimeOut.
stop_agent() {
    if [ -n "$dry" ] || launchctl print "$domain/$LABEL" >/dev/null 2>&1; then
        run launchctl bootout "$domain/$LABEL"
    fi
}

darwin() {
    if [ "$(id -u)" -eq 0 ]; then
        msg="on macOS run this as yourself, not root: the LaunchAgent loads into your login session (gui/UID)"
        [ -n "$dry" ] || die "$msg"
        echo "note: $msg"
    fi
    domain=gui/$(id -u)
    plist=$HOME/Library/LaunchAgents/$LABEL.plist
    log=$HOME/Library/Logs/lookout.log

    if [ -n "$uninstall" ]; then
        stop_agent
        run rm -f "$plist"
        if [ -n "$purge" ]; then
            run rm -f "$log"
        else
            echo "keep $log"
        fi
        return 0
    fi

    check_installed
    run mkdir -p "$HOME/Library/LaunchAgents" "$HOME/Library/Logs"
    # Only <string> values are rewritten, not the comments.
    render "$here/$LABEL.plist" "$plist" \
        "s|<string>~/|<string>$(sed_repl "$HOME")/|; s|<string>/usr/local/|<string>$(sed_repl "$prefix")/|"
    run plutil -lint "$plist"
    # Unload a previous copy first: bootstrap refuses a label that is loaded.
    stop_agent
    # Undo an earlier `launchctl disable`, which would make bootstrap fail.
    run_ok launchctl enable "$domain/$LABEL"
    run launchctl bootstrap "$domain" "$plist"
    done_msg "lookout is running: launchctl print $domain/$LABEL; logs in $log"
}

# --- Linux: systemd system service

linux() {
    command -v systemctl >/dev/null 2>&1 || [ -n "$dry" ] ||
        die "systemctl not found: this script supports systemd only"
    case $prefix/ in
    /home/* | /root/* | /run/user/*)
        die "--prefix $prefix: the unit's ProtectHome=yes hides home directories from the service" ;;
    esac
    units=/etc/systemd/system
    unit_file=$units/$UNIT

    if [ -n "$uninstall" ]; then
        run_ok_in "$units" systemctl disable --now "$UNIT"
        run_in "$units" rm -f "$unit_file"
        run_in "$units" systemctl daemon-reload
        return 0
    fi

    check_installed
    render "$here/$UNIT" "$unit_file" "s|/usr/local/|$(sed_repl "$prefix")/|g"
    run_in "$units" systemctl daemon-reload
    run_in "$units" systemctl enable "$UNIT"
    run_in "$units" systemctl restart "$UNIT"
    done_msg "lookout is running: systemctl status $UNIT; logs: journalctl -u $UNIT"
}

[ -n "$dry" ] && echo "dry run: printing commands, running none"
case $(uname -s) in
Darwin) darwin ;;
Linux) linux ;;
*) die "unsupported system $(uname -s): macOS (launchd) and Linux (systemd) only" ;;
esac
