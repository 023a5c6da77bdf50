#!/usr/bin/env bash
# Stop the daemons that up.sh started (and nothing else); the packages and config stay.
set -uo pipefail
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}
STATE=${XRAYHPC_SGE_STATE:-/var/run/xrayhpc-testcluster}

stop() { # marker daemon
    [ -f "$STATE/$1" ] || return 0
    pkill -x "$2" 2>/dev/null
    for _ in $(seq 50); do pgrep -x "$2" >/dev/null || break; sleep 0.2; done
    pkill -9 -x "$2" 2>/dev/null
    rm -f "$STATE/$1"
    echo "testcluster: stopped $2"
}

stop execd sge_execd
stop qmaster sge_qmaster
