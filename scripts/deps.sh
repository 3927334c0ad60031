#!/usr/bin/env bash
# Installs what building and testing dvsync needs on Debian 12, and nothing
# else: the PostgreSQL 15 server binaries (the tests and the demo start
# throwaway clusters from them), a check that Go is new enough, and the Go
# modules. Safe to run again: each step does nothing when already done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly pg_major=15
readonly pg_bin=/usr/lib/postgresql/${pg_major}/bin
readonly go_min_major=1 go_min_minor=26

log() { printf 'deps: %s\n' "$*"; }
die() {
	printf 'deps: error: %s\n' "$*" >&2
	exit 1
}

# as_root runs a command as root: directly when we are root, through sudo
# otherwise.
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "installing packages needs root; run as root or install sudo (wanted: $*)"
	fi
}

# Go first: it is the one thing this script cannot install, so say so
# before spending minutes on apt.
check_go() {
	command -v go >/dev/null ||
		die "go not found on PATH; install Go ${go_min_major}.${go_min_minor} or newer and put its bin directory (usually /usr/local/go/bin) on PATH"
	local v
	v=$(go env GOVERSION) || die "'go env GOVERSION' failed; is the Go installation complete?"
	[[ $v =~ go([0-9]+)\.([0-9]+) ]] ||
		die "cannot tell the Go version from '$v'; need Go ${go_min_major}.${go_min_minor} or newer"
	local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
	if ((major < go_min_major || (major == go_min_major && minor < go_min_minor))); then
		die "found $v at $(command -v go); dvsync needs Go ${go_min_major}.${go_min_minor} or newer"
	fi
	log "using $v"
}

install_postgres() {
	if [[ -x $pg_bin/initdb ]]; then
		log "PostgreSQL ${pg_major} server binaries found in $pg_bin"
		return
	fi
	command -v apt-get >/dev/null ||
		die "PostgreSQL ${pg_major} is missing ($pg_bin/initdb) and there is no apt-get to install it; install the postgresql-${pg_major} server package by hand"
	log "installing postgresql-${pg_major} with apt-get"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "postgresql-${pg_major}"
	[[ -x $pg_bin/initdb ]] || die "postgresql-${pg_major} is installed but $pg_bin/initdb is not there"
	stop_default_cluster
}

# Debian's package creates and starts a cluster named "main" on port 5432.
# dvsync never uses it (tests and the demo run their own clusters on free
# ports), so stop the one the install just started rather than leave it
# taking memory and CPU. Only called right after we installed the package:
# a cluster that was there before is the machine owner's business.
stop_default_cluster() {
	command -v pg_lsclusters >/dev/null || return 0
	local ver cluster port status
	while read -r ver cluster port status _; do
		if [[ $ver == "$pg_major" && $status == online* ]]; then
			log "stopping cluster $ver/$cluster (port $port) that the package started; dvsync does not use it"
			as_root pg_ctlcluster "$ver" "$cluster" stop
		fi
	done < <(pg_lsclusters --no-header 2>/dev/null)
}

# Node.js runs the emulator's compatibility suite (a third-party Dataverse
# client from npm) in `make test`; the suite installs its pinned packages
# itself with npm ci. Debian 12's own nodejs is 18, too old, so this can
# only check and say what to install.
check_node() {
	local v
	v=$(node --version 2>/dev/null) ||
		die "node not found on PATH; make test needs Node.js 20 or newer with npm (Debian 12's nodejs package is 18: use NodeSource's or nodejs.org's build)"
	if ! [[ $v =~ ^v([0-9]+) ]] || ((BASH_REMATCH[1] < 20)); then
		die "found Node.js $v; make test needs Node.js 20 or newer"
	fi
	command -v npm >/dev/null || die "npm not found on PATH; it comes with Node.js"
	log "using Node.js $v"
}

check_go
if [[ ${1:-} == --node ]]; then
	check_node
fi
install_postgres
log "downloading Go modules"
go mod download
log "ok"
