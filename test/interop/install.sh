#!/bin/sh
# Installs the OpenTelemetry JavaScript packages of the interop test, at the exact
# versions of test/interop/package-lock.json, into build/interop-node with
# `npm ci`. Does nothing when that lock is already installed there. Run from the
# repository root by `make deps` and by test/interop/run.sh.
# Prints one line when it installs; on failure the reason (and npm's log tail) and
# exit status 1.

SRC=test/interop
NODE_DIR=build/interop-node

die() {
    echo "interop-deps: $*"
    exit 1
}

command -v node >/dev/null 2>&1 || die "node not found on PATH (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (Debian: apt-get install npm)"
# The pinned SDK line supports node ^18.19 || >=20.6.
node -e 'const [a,b]=process.versions.node.split(".").map(Number);
process.exit(a>20||(a===20&&b>=6)||(a===18&&b>=19)?0:1)' ||
    die "node $(node --version) too old: the pinned OpenTelemetry SDK needs ^18.19 or >=20.6"

want=$(cat "$SRC/package.json" "$SRC/package-lock.json" | cksum)
have=$(cat "$NODE_DIR/.installed" 2>/dev/null)
if [ "$want" = "$have" ] && [ -d "$NODE_DIR/node_modules/@opentelemetry" ]; then
    exit 0
fi

echo "deps: npm ci (the OpenTelemetry JavaScript SDK of the interop test) into $NODE_DIR"
rm -rf "$NODE_DIR"
mkdir -p "$NODE_DIR" || die "cannot create $NODE_DIR"
cp "$SRC/package.json" "$SRC/package-lock.json" "$NODE_DIR/" || die "cannot copy the package files"
# coreutils timeout caps the install where present.
tmo=
command -v timeout >/dev/null 2>&1 && tmo="timeout 600"
# --ignore-scripts: no package here needs an install script to work.
if ! (cd "$NODE_DIR" && $tmo npm ci --no-audit --no-fund --ignore-scripts) > "$NODE_DIR/npm-ci.log" 2>&1; then
    tail -n 30 "$NODE_DIR/npm-ci.log"
    die "npm ci failed (log: $NODE_DIR/npm-ci.log)"
fi
echo "$want" > "$NODE_DIR/.installed"
