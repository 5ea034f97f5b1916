#!/usr/bin/env bash
# `make test-cluster`: run tests/cluster in a private network namespace (tools/cluster/netns.sh), then check that
# the suite left nothing behind in it: no process of the control plane, nothing listening.
#
#   tools/cluster/run-suite.sh [pytest arguments]
set -euo pipefail
if [ "${DBOPS_IN_NETNS:-}" != 1 ]; then exec "$(dirname "$0")/netns.sh" "$0" "$@"; fi
python=${PYTHON:-.venv/bin/python}
rc=0
"$python" -m pytest -q -m cluster tests/cluster "$@" || rc=$?
# Only this namespace's sockets are visible here; the host's and other runs' are not.
if [ -n "$(ss -Hltn 2>/dev/null)" ]; then
  echo "run-suite: still listening after the suite:" >&2; ss -ltnp >&2; rc=1
fi
# Processes started in this namespace (other runs on the machine live in other namespaces).
mine=$(readlink /proc/self/ns/net)
left=""
for pid in $(pgrep -f '/bin/(etcd|kube-apiserver|kube-controller-manager|crossplane-core|registry|function)( |$)' || true); do
  [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$mine" ] && left="$left $pid"
done
if [ -n "$left" ]; then
  echo "run-suite: processes left behind:" >&2; ps -o pid,args -p "$(echo $left | tr " " ,)" >&2; rc=1
fi
exit $rc
