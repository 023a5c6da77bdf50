#!/usr/bin/env bash
# Bring up a single-host Grid Engine for the tests, from Debian's packages.
# Idempotent: a running, configured cluster is left as it is. Needs root.
# What it starts is recorded in $STATE so that down.sh stops only that.
# Fake GPUs: the host offers gpus=2, gpu_c=7.0 (and gpu_type, gpu_memory), so
# GPU requests schedule here while the worker still sees no GPU.
set -euo pipefail

export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}
STATE=${XRAYHPC_SGE_STATE:-/var/run/xrayhpc-testcluster}
PROJECT=${XRAYHPC_SGE_PROJECT:-xrayhpc-test}
SLOTS=${XRAYHPC_SGE_SLOTS:-4}
HOST=$(hostname)
COMMON=$SGE_ROOT/$SGE_CELL/common
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say() { echo "testcluster: $*"; }

install_packages() {
    if command -v qsub >/dev/null && [ -x /usr/sbin/sge_qmaster ] && [ -x /usr/sbin/sge_execd ]; then
        return
    fi
    say "installing Debian's gridengine packages"
    debconf-set-selections <<SEL
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string $SGE_CELL
gridengine-common shared/gridenginemaster string $HOST
gridengine-client shared/gridenginemaster string $HOST
gridengine-master shared/gridenginemaster string $HOST
SEL
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        gridengine-master gridengine-exec gridengine-client >/dev/null 2>&1
}

# SGE refuses a client whose address resolves back to another name
# ("client IP resolved to host name localhost"): alias those names to $HOST.
fix_host_names() {
    getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts
    echo "$HOST localhost" >"$COMMON/host_aliases"
    echo "$HOST" >"$COMMON/act_qmaster"
}

master_up() { qstat -f >/dev/null 2>&1; }

# Wait for an event, not for a number of seconds: here for `cond` to hold, giving up only after
# `limit` seconds (far beyond what a slow, busy machine needs; a hang must still end).
wait_for() { # limit what cond...
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$end" ]; then
            say "gave up after ${limit} s waiting for $what" >&2
            return 1
        fi
        sleep 0.2
    done
}

no_old_master() { ! pgrep -x sge_qmaster >/dev/null; }

start_master() {
    master_up && return
    # A master shutting down (qconf -km) still holds its port and spool for seconds on a busy
    # machine: a new one started beside it dies. Wait for the old process to be gone.
    wait_for 300 "the old sge_qmaster to exit" no_old_master || exit 1
    mkdir -p "$STATE" /var/run/gridengine
    chown sgeadmin:sgeadmin /var/run/gridengine
    # After a hard kill the master may reuse job ids: continue after the
    # highest one the accounting file knows.
    local acct=$COMMON/accounting seq=/var/spool/gridengine/qmaster/jobseqnum
    if [ -s "$acct" ]; then
        awk -F: '!/^#/ && $6 > max {max = $6} END {print max + 0}' "$acct" >"$TMP/seq"
        if [ ! -s "$seq" ] || [ "$(cat "$TMP/seq")" -gt "$(cat "$seq")" ]; then
            cp "$TMP/seq" "$seq"
        fi
    fi
    /usr/sbin/sge_qmaster
    touch "$STATE/qmaster"
    wait_for 300 "sge_qmaster to answer (see /var/spool/gridengine/qmaster/messages)" master_up || exit 1
}

# `qconf -M*` takes a whole object from a file: dump, edit with sed, load.
set_lines() { # file key value...
    local file=$1; shift
    while [ $# -gt 0 ]; do
        if grep -q "^$1 " "$file"; then
            sed -i "s|^$1 .*|$1 $2|" "$file"
        else
            echo "$1 $2" >>"$file"
        fi
        shift 2
    done
}

configure() {
    # -Mconf takes the configuration's name from the file's name
    qconf -sconf global >"$TMP/global"
    # the value of reporting_params continues on a second line
    sed -i '/^reporting_params/,/sharelog/d' "$TMP/global"
    set_lines "$TMP/global" min_uid 0 min_gid 0 shell_start_mode unix_behavior \
        reporting_params "accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00" \
        load_report_time 00:00:05 max_unheard 00:00:30
    qconf -Mconf "$TMP/global" >/dev/null 2>&1

    qconf -ssconf >"$TMP/sconf"
    set_lines "$TMP/sconf" schedule_interval 0:0:1 flush_submit_sec 1 flush_finish_sec 1
    qconf -Msconf "$TMP/sconf" >/dev/null 2>&1

    qconf -sc >"$TMP/complexes"
    grep -q '^gpus ' "$TMP/complexes" || cat >>"$TMP/complexes" <<C
gpus                gpus       INT       <=    YES         YES        0        0
gpu_c               gpu_c      DOUBLE    <=    YES         NO         0        0
gpu_type            gpu_type   RESTRING  ==    YES         NO         NONE     0
gpu_memory          gpu_memory MEMORY    <=    YES         NO         0        0
C
    qconf -Mc "$TMP/complexes" >/dev/null 2>&1 || true

    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1

    if ! qconf -sp omp >/dev/null 2>&1; then
        cat >"$TMP/pe" <<P
pe_name            omp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
P
        qconf -Ap "$TMP/pe" >/dev/null 2>&1
    fi

    if ! qconf -sprj "$PROJECT" >/dev/null 2>&1; then
        printf 'name %s\noticket 0\nfshare 0\nacl NONE\nxacl NONE\n' "$PROJECT" >"$TMP/prj"
        qconf -Aprj "$TMP/prj" >/dev/null 2>&1
    fi
}

start_execd() {
    if ! pgrep -x sge_execd >/dev/null; then
        mkdir -p "$STATE" /var/spool/gridengine/execd
        chown sgeadmin:sgeadmin /var/spool/gridengine/execd
        /usr/sbin/sge_execd
        touch "$STATE/execd"
    fi
    wait_for 300 "sge_execd to register $HOST" qconf -se "$HOST" >/dev/null 2>&1 || true
    # -se also shows read-only load values that -Me refuses: write it whole
    cat >"$TMP/host" <<H
hostname              $HOST
load_scaling          NONE
complex_values        gpus=2,gpu_c=7.0,gpu_type=P100,gpu_memory=16G
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
H
    qconf -Me "$TMP/host" >/dev/null 2>&1

    if ! qconf -sq all.q >/dev/null 2>&1; then
        qconf -sq >"$TMP/queue"
        set_lines "$TMP/queue" qname all.q hostlist "$HOST" slots "$SLOTS" pe_list omp \
            shell /bin/bash load_thresholds NONE
        qconf -Aq "$TMP/queue" >/dev/null 2>&1
    fi
}

host_ready() {
    qstat -f -q all.q 2>/dev/null | grep -q "all.q@$HOST" \
        && ! qstat -f -q all.q | grep "all.q@$HOST" | grep -qE ' (au|u|E|d)$'
}

wait_ready() {
    if wait_for 300 "the execution host (see /var/spool/gridengine/execd/$HOST/messages)" host_ready; then
        say "up: host $HOST, $SLOTS slots, project $PROJECT, PE omp, gpus=2 gpu_c=7.0"
        return
    fi
    qstat -f >&2
    exit 1
}

install_packages
fix_host_names
start_master
configure
start_execd
wait_ready
