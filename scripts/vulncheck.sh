#!/usr/bin/env bash
# vulncheck.sh: run govulncheck on the whole module against an offline,
# pinned copy of the Go vulnerability database.
#
# CI machines cannot reach vuln.go.dev, only the Go module proxy. The
# database is therefore rebuilt from the golang.org/x/vulndb module (its
# data/osv/*.json files, indexed by that module's own cmd/indexdb) at the
# version pinned below. Because the database is pinned, a result only
# changes when someone raises VULNDB_VERSION: a new advisory then fails CI
# on purpose until the affected dependency or the toolchain is raised.
#
# Usage: scripts/vulncheck.sh [govulncheck args...]   (default: ./...)
# Exit status: govulncheck's own (0 clean, 3 vulnerabilities found), or
# non-zero if a tool or the database could not be prepared.
#
# To update the pins: pick the new version, set it below, run
#   go mod download -json golang.org/x/vulndb@<version>   (outside a module)
# and copy its "Sum" into VULNDB_SUM; for x/vuln, copy the h1: hash shown by
#   go version -m "$(go env GOPATH)/bin/govulncheck"
# after a build with VULN_SUM left empty.
set -euo pipefail

export GOTOOLCHAIN=go1.27.3

VULN_VERSION=v1.9.0
VULN_SUM='h1:12VaqnI9kJfqwRoPptxoqsUhQtdfrSbdksT7X/KY/sc='
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
VULNDB_SUM='h1:mfngRv0Yoh0VApsXKEN82CjD99kl7mtparN3bs3JnqI='

log() { printf 'vulncheck: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Tool builds happen outside the repo's module and must not inherit a
# workspace or flags such as -mod=vendor meant for the project build.
tool_go() { (cd "$work" && exec env GOWORK=off GOFLAGS= go "$@"); }

work=$(mktemp -d "${TMPDIR:-/tmp}/recoup-vulncheck.XXXXXX")
build_pid=
cleanup() {
	if [ -n "$build_pid" ]; then
		kill "$build_pid" 2>/dev/null || true
		wait "$build_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

goversion=$(tool_go env GOVERSION) || die "cannot run the $GOTOOLCHAIN toolchain"
[ "$goversion" = "$GOTOOLCHAIN" ] || die "go reports $goversion, want $GOTOOLCHAIN"

# --- govulncheck -----------------------------------------------------------

gopath=$(tool_go env GOPATH)
bindir="${gopath%%:*}/bin"
govulncheck="$bindir/govulncheck"

# govulncheck_ok reports whether $govulncheck was built from the pinned
# x/vuln (same version and module hash) by the pinned toolchain.
govulncheck_ok() {
	[ -x "$govulncheck" ] || return 1
	tool_go version -m "$govulncheck" 2>/dev/null | awk \
		-v tc="$GOTOOLCHAIN" -v v="$VULN_VERSION" -v s="$VULN_SUM" '
		NR == 1 && $NF == tc { toolchain = 1 }
		$1 == "mod" && $2 == "golang.org/x/vuln" && $3 == v && $4 == s { mod = 1 }
		END { exit !(toolchain && mod) }'
}

# On a cold machine both the govulncheck build and the database build are
# mostly module downloads, so the former runs in the background while the
# latter proceeds; the go command locks its module cache for this.
if govulncheck_ok; then
	log "using $govulncheck ($VULN_VERSION, $GOTOOLCHAIN)"
else
	log "building govulncheck $VULN_VERSION with $GOTOOLCHAIN into $bindir"
	# Not via tool_go: the subshell execs go, so $! is go's own pid.
	(cd "$work" && exec env GOWORK=off GOFLAGS= GOBIN="$bindir" \
		go install "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION") \
		>"$work/govulncheck-build.log" 2>&1 &
	build_pid=$!
fi

# --- offline vulnerability database ---------------------------------------

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/recoup-vulndb"
dbdir="$cache_root/$VULNDB_VERSION"
# The marker is written last, so its presence means a complete database.
# govulncheck only reads index/ and ID/, so a top-level file is harmless.
marker="$dbdir/recoup-vulndb-version"

db_ok() { [ -f "$marker" ] && [ "$(cat "$marker")" = "$VULNDB_VERSION $VULNDB_SUM" ]; }

if db_ok; then
	log "using database $dbdir"
else
	log "building database golang.org/x/vulndb@$VULNDB_VERSION into $dbdir"

	dl=$(tool_go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION") ||
		die "cannot download golang.org/x/vulndb@$VULNDB_VERSION: $dl"
	json_field() { printf '%s\n' "$dl" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"; }
	srcdir=$(json_field Dir)
	sum=$(json_field Sum)
	[ "$sum" = "$VULNDB_SUM" ] || die "golang.org/x/vulndb@$VULNDB_VERSION has hash $sum, want $VULNDB_SUM"
	[ -d "$srcdir/data/osv" ] || die "$srcdir has no data/osv"

	GOBIN="$work/bin" tool_go install "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION"

	mkdir -p "$cache_root"
	tmpdb=$(mktemp -d "$cache_root/.build.XXXXXX")
	if ! "$work/bin/indexdb" -vulns "$srcdir/data/osv" -out "$tmpdb/db"; then
		rm -rf "$tmpdb"
		die "indexdb failed"
	fi

	want=$(find "$srcdir/data/osv" -maxdepth 1 -name '*.json' | wc -l)
	got=$(find "$tmpdb/db/ID" -maxdepth 1 -name '*.json' | wc -l)
	if [ "$want" -eq 0 ] || [ "$want" -ne "$got" ] || [ ! -f "$tmpdb/db/index/modules.json" ]; then
		rm -rf "$tmpdb"
		die "database incomplete: $got of $want entries"
	fi
	printf '%s\n' "$VULNDB_VERSION $VULNDB_SUM" >"$tmpdb/db/recoup-vulndb-version"

	# Replace a partial copy, unless a concurrent run has completed one
	# meanwhile. rename(2) refuses a non-empty target, so if another run
	# wins the remaining race its copy is kept and ours is dropped.
	db_ok || rm -rf "$dbdir"
	mv -T "$tmpdb/db" "$dbdir" 2>/dev/null || db_ok ||
		{ rm -rf "$tmpdb"; die "cannot move database into $dbdir"; }
	rm -rf "$tmpdb"
	log "database ready: $got entries"
fi

if [ -n "$build_pid" ]; then
	pid=$build_pid
	build_pid=
	if ! wait "$pid"; then
		cat "$work/govulncheck-build.log" >&2
		die "building govulncheck failed"
	fi
	govulncheck_ok || die "$govulncheck is not golang.org/x/vuln $VULN_VERSION $VULN_SUM built by $GOTOOLCHAIN"
fi

# --- scan ------------------------------------------------------------------

if [ "$#" -eq 0 ]; then
	set -- ./...
fi

cd "$repo_root"
log "govulncheck -db file://$dbdir $* (in $repo_root)"
status=0
"$govulncheck" -db "file://$dbdir" "$@" || status=$?
exit "$status"
