#!/usr/bin/env bash
# Debian's PostgreSQL and MariaDB clients of one Debian release, the ones a worker image on that release installs
# (Dockerfile, stage worker-os: `postgresql-client mariadb-client`), unpacked into the tool cache so the backup tests
# can run the worker with them (tests/test_backup_clients.py). No Docker, no root, no chroot: apt downloads the
# packages and their libraries from deb.debian.org (signatures checked against the host's debian-archive-keyring),
# dpkg -x unpacks them, and patchelf points copies of pg_dump, pg_restore, psql, mariadb-dump and mariadb at the
# release's own dynamic loader and libraries. Nothing here is committed. Prints the bin directory on stdout.
#
#   tools/clients/debian-clients.sh trixie
#
# DBOPS_TOOLS_CACHE overrides the cache root (default ~/.cache/dbops-tools). The cache is keyed by release; delete
# the directory to take the release's newest point versions. Measured cold: docs/worker.md, "The clients in the
# worker image".
set -euo pipefail

suite=${1:-trixie}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
root=${DBOPS_TOOLS_CACHE:-$HOME/.cache/dbops-tools}
key="debian-clients-$suite"
dir="$root/$key"
log() { echo "debian-clients: $*" >&2; }
[ -r "$keyring" ] || { log "need $keyring (apt-get install debian-archive-keyring)"; exit 1; }
mkdir -p "$root"

# Two runs at once (two sessions, CI and a developer) would share the directory: take turns.
exec 9>"$root/$key.lock"
flock 9

if [ ! -e "$dir/bin/.complete" ]; then
  log "$suite: downloading postgresql-client and mariadb-client"
  rm -rf "$dir"
  mkdir -p "$dir/apt/etc/apt.conf.d" "$dir/apt/etc/preferences.d" "$dir/apt/etc/sources.list.d" \
    "$dir/apt/state/lists/partial" "$dir/apt/cache/archives/partial" "$dir/root" "$dir/bin"
  : >"$dir/apt/status"
  cat >"$dir/apt/etc/sources.list" <<SOURCES
deb [signed-by=$keyring] http://deb.debian.org/debian $suite main
deb [signed-by=$keyring] http://deb.debian.org/debian $suite-updates main
deb [signed-by=$keyring] http://deb.debian.org/debian-security $suite-security main
SOURCES
  # A private apt: its own sources, lists, cache and an empty dpkg status, so every library the clients need is
  # downloaded (nothing is taken from the host) and the host's apt state is not touched.
  apt=(apt-get -q -o "Dir::Etc=$dir/apt/etc" -o "Dir::State=$dir/apt/state" -o "Dir::Cache=$dir/apt/cache"
    -o "Dir::State::status=$dir/apt/status" -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
  "${apt[@]}" update >&2
  "${apt[@]}" install -y --download-only --no-install-recommends postgresql-client mariadb-client patchelf >&2
  for deb in "$dir"/apt/cache/archives/*.deb; do dpkg -x "$deb" "$dir/root"; done

  lib=$(dirname "$(find "$dir/root/usr/lib" -maxdepth 2 -name 'libc.so.6' | head -1)")
  loader=$(find "$lib" -maxdepth 1 -name 'ld-linux*.so.*' | head -1)
  [ -n "$loader" ] || { log "no dynamic loader in $lib"; exit 1; }
  patchelf=("$loader" --library-path "$lib" "$dir/root/usr/bin/patchelf")
  pgbin=$(find "$dir/root/usr/lib/postgresql" -mindepth 2 -maxdepth 2 -type d -name bin | sort -V | tail -1)
  for tool in "$pgbin/pg_dump" "$pgbin/pg_restore" "$pgbin/psql" \
    "$dir/root/usr/bin/mariadb-dump" "$dir/root/usr/bin/mariadb"; do
    cp "$tool" "$dir/bin/"
    # DT_RPATH (not RUNPATH): it also applies to the libraries the tool loads, so none comes from the host.
    "${patchelf[@]}" --set-interpreter "$loader" --force-rpath --set-rpath "$lib" "$dir/bin/$(basename "$tool")"
  done
  for pkg in "$dir"/apt/cache/archives/*.deb; do
    dpkg-deb -f "$pkg" Package Version | paste -sd' '
  done >"$dir/versions.txt"
  rm -rf "$dir/apt"  # the package lists and the .debs: 200 MB nothing reads again
  touch "$dir/bin/.complete"
fi
echo "$dir/bin"
