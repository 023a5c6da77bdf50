#!/usr/bin/env bash
# Stop the daemons that slurm-up.sh started, by the pids it recorded (and nothing else).
set -uo pipefail
STATE=${XRAYHPC_SLURM_STATE:-/var/run/xrayhpc-testslurm}

stop() { # name
    local file=$STATE/$1.pid pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null
        echo "testslurm: stopped $1 (pid $pid)"
    fi
    rm -f "$file"
}

stop slurmd
stop slurmctld
stop slurmdbd
stop mariadbd
stop munged
