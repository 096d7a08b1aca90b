#!/usr/bin/env bash
# install-tool.sh: make sure one pinned Go tool is in $(go env GOPATH)/bin,
# built from the pinned version by the project's toolchain. A binary that is
# already there and right is kept; a missing one, another version or one
# built by another toolchain is (re)installed with `go install`. Prints one
# line either way, so that a cold `make test` says what it is doing.
#
# Usage: scripts/install-tool.sh NAME PACKAGE VERSION
#   e.g. scripts/install-tool.sh stripe-mock github.com/stripe/stripe-mock v0.180.0
set -euo pipefail

export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

if [ "$#" -ne 3 ]; then
	echo "usage: $0 NAME PACKAGE VERSION" >&2
	exit 2
fi
name=$1 pkg=$2 version=$3

gopath=$(go env GOPATH)
bindir="${gopath%%:*}/bin"
bin="$bindir/$name"

# installed reports whether $bin was built from $pkg at $version by the
# project's toolchain (go version -m: "path: goX", "path PKG", "mod MOD VERSION SUM").
installed() {
	[ -x "$bin" ] || return 1
	go version -m "$bin" 2>/dev/null | awk -v tc="$GOTOOLCHAIN" -v p="$pkg" -v v="$version" '
		NR == 1 && $NF == tc { toolchain = 1 }
		$1 == "path" && $2 == p { path = 1 }
		$1 == "mod" && $3 == v { mod = 1 }
		END { exit !(toolchain && path && mod) }'
}

if installed; then
	echo "$name $version: already in $bindir"
	exit 0
fi
echo "installing $name $version into $bindir (once)…"
# Outside the project's module, without a workspace or flags meant for it.
cd "${TMPDIR:-/tmp}"
GOWORK=off GOFLAGS= GOBIN="$bindir" go install "$pkg@$version"
installed || { echo "$bin is still not $pkg $version built by $GOTOOLCHAIN" >&2; exit 1; }
