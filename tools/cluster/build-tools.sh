#!/usr/bin/env bash
# Build the pinned upstream tools the real-control-plane suite runs, from the Go module proxy only, into a cache
# directory keyed by their versions. Nothing built here is committed. Prints the cache directory on stdout.
#
#   tools/cluster/build-tools.sh [cli|core|kube|registry|all|path]      (default all; path only prints the directory)
#
# DBOPS_TOOLS_CACHE overrides the cache root (default ~/.cache/dbops-tools).
set -euo pipefail

CLI_VERSION=v2.5.0          # github.com/crossplane/cli/v2: crossplane composition render, resource validate, xpkg
CORE_VERSION=v2.3.4         # github.com/crossplane/crossplane/v2: Crossplane core (cmd/crossplane)
KUBE_VERSION=v1.36.3        # k8s.io/kubernetes: kube-apiserver, kube-controller-manager
STAGING_VERSION=v0.36.3     # the k8s.io/* staging modules released with KUBE_VERSION
ETCD_VERSION=v3.7.1         # go.etcd.io/etcd/server/v3
REGISTRY_VERSION=v0.21.6    # github.com/google/go-containerregistry cmd/registry (the version Crossplane core uses)

root=${DBOPS_TOOLS_CACHE:-$HOME/.cache/dbops-tools}
key="crossplane-cli-$CLI_VERSION+core-$CORE_VERSION+kube-$KUBE_VERSION+etcd-$ETCD_VERSION"
bin="$root/$key/bin"
work="$root/$key/src"
if [ "${1:-all}" = path ]; then echo "$root/$key"; exit 0; fi
mkdir -p "$bin" "$work"
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
log() { echo "build-tools: $*" >&2; }

# Crossplane's release builds stamp the version (packages declare which Crossplane versions they accept, and an
# unstamped core rejects every such package); a binary without the stamp is rebuilt.
XP_VERSION_VAR=github.com/crossplane/crossplane-runtime/v2/pkg/version.version

build_cli() {
  [ -x "$bin/crossplane" ] && "$bin/crossplane" version --client 2>/dev/null | grep -q "$CLI_VERSION" && return
  log "crossplane CLI $CLI_VERSION"
  # go install pkg@version asks the proxy for the module's version list (to check deprecation), which this
  # proxy refuses; a wrapper module that requires the exact version needs no list.
  local w="$work/cli"
  rm -rf "$w"; mkdir -p "$w"
  (cd "$w" && go mod init local/xpcli >/dev/null 2>&1 &&
    go mod edit -require="github.com/crossplane/cli/v2@$CLI_VERSION" &&
    printf 'package main\nimport _ "github.com/crossplane/cli/v2/cmd/crossplane"\n' >tools.go &&
    go build -trimpath -ldflags "-s -w -X $XP_VERSION_VAR=$CLI_VERSION" -o "$bin/crossplane" github.com/crossplane/cli/v2/cmd/crossplane)
}

# The RBAC manager (`crossplane-core rbac start`) serves metrics on controller-runtime's default, :8080 on every
# interface, with no flag to move it; two control planes on one machine would clash there. Linked with the default
# off ("0"); core itself sets its metrics address by flag and is unaffected. A build with other flags is redone.
CORE_LDFLAGS="-s -w -X $XP_VERSION_VAR=$CORE_VERSION -X sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress=0"

build_core() {
  [ -x "$bin/crossplane-core" ] && [ "$(cat "$bin/.crossplane-core.ldflags" 2>/dev/null)" = "$CORE_LDFLAGS" ] && return
  log "crossplane core $CORE_VERSION"
  # core's go.mod replaces its apis module with a local path, so go install refuses it: build it from a wrapper
  # module that requires the tagged apis module instead (the same commit the release was built from).
  local w="$work/core"
  rm -rf "$w"; mkdir -p "$w"
  (cd "$w" && go mod init local/xpcore >/dev/null 2>&1 &&
    go mod edit -require="github.com/crossplane/crossplane/v2@$CORE_VERSION" \
      -require="github.com/crossplane/crossplane/apis/v2@$CORE_VERSION" \
      -replace="github.com/crossplane/crossplane/apis/v2=github.com/crossplane/crossplane/apis/v2@$CORE_VERSION" &&
    printf 'package main\nimport _ "github.com/crossplane/crossplane/v2/cmd/crossplane"\n' >tools.go &&
    go mod tidy >/dev/null 2>&1 || true
    go build -trimpath -ldflags "$CORE_LDFLAGS" -o "$bin/crossplane-core" github.com/crossplane/crossplane/v2/cmd/crossplane)
  echo "$CORE_LDFLAGS" >"$bin/.crossplane-core.ldflags"
  ln -sfn "$(cd "$w" && go list -m -f '{{.Dir}}' github.com/crossplane/crossplane/v2)/cluster/crds" "$root/$key/crossplane-crds"
}

build_kube() {
  if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/etcd" ]; then return; fi
  log "kubernetes $KUBE_VERSION and etcd $ETCD_VERSION"
  local w="$work/kube"
  rm -rf "$w"; mkdir -p "$w"
  (cd "$w" && go mod init local/kubebin >/dev/null 2>&1
    # k8s.io/kubernetes points its staging modules at ./staging; point them at the released versions instead.
    local mod
    mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    for m in $(awk '/=> \.\/staging\/src\//{print $1}' "$mod"); do go mod edit -replace="$m=$m@$STAGING_VERSION"; done
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    # One go build for both commands: their shared packages compile once.
    go build -trimpath -ldflags "$ld" -o "$bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
  # etcd in a module of its own, so its dependency versions never move the ones Kubernetes was released with.
  local e="$work/etcd"
  rm -rf "$e"; mkdir -p "$e"
  (cd "$e" && go mod init local/etcdbin >/dev/null 2>&1 &&
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" &&
    go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_registry() {
  [ -x "$bin/registry" ] && return
  log "OCI registry (go-containerregistry $REGISTRY_VERSION)"
  # An in-memory registry on localhost: the real-control-plane suite pushes the dbops packages there.
  local w="$work/registry"
  rm -rf "$w"; mkdir -p "$w"
  (cd "$w" && go mod init local/registry >/dev/null 2>&1 &&
    go mod edit -require="github.com/google/go-containerregistry@$REGISTRY_VERSION" &&
    go build -trimpath -ldflags "-s -w" -o "$bin/registry" github.com/google/go-containerregistry/cmd/registry)
}

main() {
  case "${1:-all}" in
    cli) build_cli ;;
    core) build_core ;;
    kube) build_kube ;;
    registry) build_registry ;;
    all) build_cli; build_core; build_registry; build_kube ;;
    *) echo "usage: $0 [cli|core|kube|registry|all|path]" >&2; exit 64 ;;
  esac
  echo "$root/$key"
}

# On one line, read whole before it runs: editing this file during a build cannot derail it.
main "$@"; exit $?
