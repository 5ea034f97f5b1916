#!/usr/bin/env bash
# Build the pinned S3-compatible server the object-store tests start (tests/object_store.py), from the Go module
# proxy only, into a cache directory keyed by its version. Nothing built here is committed. Prints the bin
# directory (holding `versitygw`) on stdout.
#
#   tools/s3/build-s3-server.sh
#
# DBOPS_TOOLS_CACHE overrides the cache root (default ~/.cache/dbops-tools).
#
# Why versitygw (Apache-2.0): a real, maintained S3 gateway with tagged releases that builds with the Go here in
# about two minutes; its posix backend stores each object as a plain file (tests can corrupt or inspect one),
# and it serves multipart upload, ListObjectsV2, DeleteObjects, path-style addressing and TLS. MinIO is AGPL;
# SeaweedFS has no tagged module release (pseudo-versions only) and takes five times as long; s3s-fs (crates.io)
# calls itself experimental, has no TLS and takes its keys on the command line.
set -euo pipefail

VERSITYGW_VERSION=v1.7.0    # github.com/versity/versitygw (tests/object_store.py reads this line)

root=${DBOPS_TOOLS_CACHE:-$HOME/.cache/dbops-tools}
key="versitygw-$VERSITYGW_VERSION"
bin="$root/$key/bin"
work="$root/$key/src"
mkdir -p "$bin" "$work"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
log() { echo "build-s3-server: $*" >&2; }

# Two builds at once (two sessions, CI and a developer) would share the work directory: take turns.
exec 9>"$root/$key.lock"
flock 9

if [ ! -x "$bin/versitygw" ]; then
  log "versitygw $VERSITYGW_VERSION"
  # go install pkg@version asks the proxy for the module's version list, which this proxy refuses; a wrapper
  # module that requires the exact version needs no list.
  w="$work/wrapper"
  rm -rf "$w"; mkdir -p "$w"
  (cd "$w" && go mod init local/s3server >/dev/null 2>&1 &&
    go mod edit -require="github.com/versity/versitygw@$VERSITYGW_VERSION" &&
    printf 'package main\nimport _ "github.com/versity/versitygw/cmd/versitygw"\n' >tools.go &&
    go build -trimpath \
      -ldflags "-s -w -X main.Version=$VERSITYGW_VERSION -X main.Build=proxy -X main.BuildTime=none" \
      -o "$bin/versitygw.partial" github.com/versity/versitygw/cmd/versitygw)
  # Renamed only when complete, so an interrupted build never leaves a binary that looks usable.
  mv "$bin/versitygw.partial" "$bin/versitygw"
fi
echo "$bin"
