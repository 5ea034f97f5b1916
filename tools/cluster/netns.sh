#!/usr/bin/env bash
# Run a command in a private network namespace with only a loopback interface: the control plane, the database
# servers and the tests then see each other on 127.0.0.1 and nothing else, no port can clash with another run,
# and whatever listens is gone with the namespace. Components that bind every interface (Crossplane's metrics and
# health ports, the RBAC manager's :8080) are reachable from this namespace only.
#
#   tools/cluster/netns.sh COMMAND...
#
# Needs root (or unprivileged user namespaces); without it the command runs as it is, with a warning.
set -euo pipefail
if [ "${DBOPS_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
if unshare --net true 2>/dev/null; then
  exec unshare --net -- env DBOPS_IN_NETNS=1 bash -c 'ip link set lo up && exec "$@"' netns "$@"
fi
echo "netns.sh: cannot create a network namespace; running on the host's network" >&2
exec "$@"
