#!/usr/bin/env bash
# Install the Debian packages of the given roles from packages.txt that are missing.
#
#   scripts/install-deps.sh ROLE...      roles: build runtime dev fuzz
#
# Quiet and fast when everything is already installed (one dpkg-query call), so
# `make run` can call it every time.  As root it installs what is missing with
# apt-get; otherwise it prints the command to run and exits 1.
# SKIP_DEPS=1 skips the whole check (for hosts that are not Debian-like).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list="$here/../packages.txt"

if [ "$#" -eq 0 ]; then
	echo "usage: $0 ROLE...   (roles: build runtime dev fuzz)" >&2
	exit 2
fi
if [ "${SKIP_DEPS:-0}" = 1 ]; then
	exit 0
fi

# Collect the packages of the requested roles; an unknown role is a typo, not a no-op.
wanted=()
for role in "$@"; do
	found=0
	while read -r r pkg _; do
		if [ "$r" = "$role" ] && [ -n "${pkg:-}" ]; then
			wanted+=("$pkg")
			found=1
		fi
	done < <(sed -e 's/#.*//' "$list")
	if [ "$found" = 0 ]; then
		echo "install-deps: unknown role '$role' (see $list)" >&2
		exit 2
	fi
done

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps: no dpkg-query (not Debian?); install by hand: ${wanted[*]}" \
		"(or set SKIP_DEPS=1)" >&2
	exit 1
fi

# One dpkg-query call for all packages; unknown packages print nothing and count as missing.
declare -A status=()
while read -r pkg st; do
	status[$pkg]=$st
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null || true)

missing=()
for pkg in "${wanted[@]}"; do
	if [ "${status[$pkg]:-}" != installed ]; then
		missing+=("$pkg")
	fi
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing packages: ${missing[*]}; run as root: sudo sh -c '$cmd'" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
