#!/usr/bin/env bash
# `make test-cluster`: run tests/cluster in a private network namespace (tools/cluster/netns.sh), then check that
# the suite left nothing behind in it: no process of the control plane, nothing listening.
#
#   tools/cluster/run-suite.sh                     the whole suite, in parallel groups (below)
#   tools/cluster/run-suite.sh [pytest arguments]  one pytest run with these arguments (-k quickstart, or test
#                                                  paths and node ids under tests/cluster: only those)
#
# The suite's time is mostly waiting on Crossplane (its TTLs, the Job back-off), not CPU: the groups run at once,
# each pytest process with its own control plane and its own PostgreSQL and MariaDB (a session fixture each), and
# the run takes as long as the slowest group. Each group's output is printed when it ends. A test module that no
# group names runs in a group of its own.
set -euo pipefail
if [ "${DBOPS_IN_NETNS:-}" != 1 ]; then exec "$(dirname "$0")/netns.sh" "$0" "$@"; fi
python=${PYTHON:-.venv/bin/python}
here=tests/cluster
stalls=test_reading_pods_without_the_pod_rule_stalls_the_step_until_the_rule_is_applied  # a control plane each
groups=(
  "$here/test_quickstart.py $here/test_install.py"
  "$here/test_admin_password.py $here/test_namespaced.py"
  "$here/test_findings.py $here/test_deletion.py $here/test_grant_users.py"
  "$here/test_pod_reads.py::$stalls $here/test_backup.py"  # the shortest group: the backup round trip fits
  "$here/test_pod_reads.py --deselect $here/test_pod_reads.py::$stalls"
)

rc=0
if [ $# -gt 0 ]; then
  paths=0
  for arg in "$@"; do [[ "$arg" == tests/* ]] && paths=1; done
  [ $paths = 1 ] || set -- "$here" "$@"  # test paths or node ids given: only those
  "$python" -m pytest -q -m cluster "$@" || rc=$?
else
  named=" ${groups[*]} "
  for module in "$here"/test_*.py; do
    [[ "$named" == *" $module"[[:space:]:]* ]] || groups+=("$module")
  done
  out=$(mktemp -d)
  declare -A group_of start_of
  start=$SECONDS
  for i in "${!groups[@]}"; do
    # shellcheck disable=SC2086 (a group is a list of pytest arguments)
    "$python" -m pytest -q -p no:cacheprovider -m cluster ${groups[$i]} >"$out/$i.log" 2>&1 &
    group_of[$!]=$i
    start_of[$!]=$SECONDS
  done
  for _ in "${groups[@]}"; do
    status=0
    wait -n -p pid || status=$?
    i=${group_of[$pid]}
    echo "=== group $((i + 1))/${#groups[@]}: ${groups[$i]}: exit $status after $((SECONDS - start_of[$pid])) s"
    cat "$out/$i.log"
    [ "$status" -eq 0 ] || rc=1
  done
  rm -rf "$out"
  echo "=== cluster suite: $([ $rc -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s"
fi

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
