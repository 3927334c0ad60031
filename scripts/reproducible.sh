#!/usr/bin/env bash
# Checks that `make dist` is reproducible: copies the source tree (tracked
# and untracked files, without .git, so nothing but VERSION can come from
# the repository's state) to two folders, runs `make dist` in each, and
# compares the binaries byte for byte. The builds share the Go build cache,
# so the second costs a link per platform; GOCACHE=$(mktemp -d) in the
# environment makes the first a build from nothing.
#
# Usage: scripts/reproducible.sh   (from any directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(git describe --always --dirty 2>/dev/null || echo unknown)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/a"
# Files deleted in the work tree are still listed by --cached: skip them.
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do if [[ -e $f ]]; then printf '%s\0' "$f"; fi; done |
	xargs -0 cp --parents -t "$tmp/a"
cp -a "$tmp/a" "$tmp/second-copy"
for d in a second-copy; do
	make --no-print-directory -C "$tmp/$d" dist VERSION="$version" >/dev/null
done

if diff "$tmp/a/dist/SHA256SUMS" "$tmp/second-copy/dist/SHA256SUMS"; then
	echo "reproducible: $(wc -l <"$tmp/a/dist/SHA256SUMS") binaries identical from two folders ($version)"
	cat "$tmp/a/dist/SHA256SUMS"
else
	echo "reproducible: the builds differ" >&2
	exit 1
fi
