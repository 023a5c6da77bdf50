#!/usr/bin/env bash
# Bring up a single-host Slurm for the tests, from Debian's packages: munge, MariaDB, slurmdbd (so
# sacct has real records), slurmctld and slurmd. Idempotent: a running cluster is left as it is.
# Needs root. The pid of every daemon it starts goes to $STATE so that slurm-down.sh stops only
# those. Fake GPUs: the node offers gres gpu:2 (File=/dev/null) and the feature `gpu_c7.0`, so GPU
# requests schedule here while the worker still sees no GPU.
set -euo pipefail

STATE=${XRAYHPC_SLURM_STATE:-/var/run/xrayhpc-testslurm}
ACCOUNT=${XRAYHPC_SLURM_ACCOUNT:-xrayhpc-test}
CPUS=${XRAYHPC_SLURM_CPUS:-4}
CLUSTER=xrayhpc
HOST=$(hostname -s)
CONF=/etc/slurm
DB_PASS=xrayhpc-test-only

say() { echo "testslurm: $*"; }

# Wait for an event, not for a number of seconds (as in up.sh).
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

install_packages() {
    if [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/slurmdbd ] \
        && [ -x /usr/sbin/munged ] && command -v mariadbd >/dev/null; then
        return
    fi
    say "installing Debian's slurm-wlm, slurmdbd, munge and mariadb-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        slurm-wlm slurmdbd munge mariadb-server >/dev/null 2>&1
}

# alive NAME: the daemon this script started (its pid in $STATE) still runs
alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start_munge() {
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1; chown munge:munge /etc/munge/munge.key; }
    runuser -u munge -- /usr/sbin/munged
    wait_for 60 munged sh -c 'munge -n | unmunge >/dev/null 2>&1'
    cp /run/munge/munged.pid "$STATE/munged.pid"
}

db_up() { mariadb -u root -e 'select 1' >/dev/null 2>&1; }

start_mariadb() {
    db_up && return
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null 2>&1
    mariadbd --user=mysql --skip-networking=0 --bind-address=127.0.0.1 >"$STATE/mariadb.log" 2>&1 &
    echo $! >"$STATE/mariadbd.pid"
    wait_for 120 "MariaDB (see $STATE/mariadb.log)" db_up
    mariadb -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}

write_config() {
    mkdir -p "$CONF" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    local memory
    memory=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
    cat >"$CONF/slurm.conf.new" <<C
# written by xrayhpc's qsub/testcluster/slurm-up.sh: a single-host test cluster
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
MpiDefault=none
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it a job is given the whole node's memory, and jobs run one at a time
DefMemPerCPU=1024
SchedulerType=sched/backfill
# test pending jobs every 2 s, not every minute: a requeued job starts as soon as it may
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdParameters=config_overrides
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pidfile
SlurmdPidFile=$STATE/slurmd.pidfile
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobCompType=jobcomp/none
GresTypes=gpu
ReturnToService=2
MinJobAge=60
KillWait=5
MessageTimeout=30
# a requeued job waits for its credential to expire before it starts again (default 120 s)
AuthInfo=cred_expire=10
JobRequeue=1
NodeName=$HOST CPUs=$CPUS RealMemory=$memory Gres=gpu:2 Features=gpu_c7.0 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
C
    # each GPU needs a File= of its own (a gres without one leaves the node INVAL)
    printf 'NodeName=%s Name=gpu File=%s\n' "$HOST" /dev/null "$HOST" /dev/zero >"$CONF/gres.conf.new"
    cat >"$CONF/slurmdbd.conf.new" <<D
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pidfile
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
D
    for f in slurm.conf gres.conf slurmdbd.conf; do
        mv "$CONF/$f.new" "$CONF/$f"
    done
    chmod 600 "$CONF/slurmdbd.conf"
}

dbd_up() { sacctmgr -n list cluster >/dev/null 2>&1; }
ctld_up() { scontrol ping 2>/dev/null | grep -q UP; }
# idle, mixed or allocated, and answering (sinfo marks a node that does not answer with `*`)
node_ready() { sinfo -h -N -o '%t' 2>/dev/null | grep -qxE '(idle|mix|alloc)'; }

start_slurm() {
    if ! alive slurmdbd && ! dbd_up; then
        rm -f "$STATE/slurmdbd.pidfile"  # a stale one (after kill -9) would name another process
        /usr/sbin/slurmdbd
        wait_for 120 "slurmdbd (see /var/log/slurm/slurmdbd.log)" test -s "$STATE/slurmdbd.pidfile"
        cp "$STATE/slurmdbd.pidfile" "$STATE/slurmdbd.pid"
        wait_for 120 "slurmdbd to answer" dbd_up
    fi
    # sacctmgr answers "Nothing new added" (exit 1) for what is there already
    sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" \
        || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null
    sacctmgr -n -P list assoc format=user,account | grep -qx "root|$ACCOUNT" \
        || sacctmgr -i add user root account="$ACCOUNT" >/dev/null
    if ! alive slurmctld && ! ctld_up; then
        rm -f "$STATE/slurmctld.pidfile"  # a stale one (after kill -9) would name another process
        /usr/sbin/slurmctld
        wait_for 120 "slurmctld (see /var/log/slurm/slurmctld.log)" test -s "$STATE/slurmctld.pidfile"
        cp "$STATE/slurmctld.pidfile" "$STATE/slurmctld.pid"
        wait_for 120 "slurmctld to answer" ctld_up
    fi
    if ! alive slurmd && ! node_ready; then
        rm -f "$STATE/slurmd.pidfile"  # a stale one (after kill -9) would name another process
        /usr/sbin/slurmd
        wait_for 120 "slurmd (see /var/log/slurm/slurmd.log)" test -s "$STATE/slurmd.pidfile"
        cp "$STATE/slurmd.pidfile" "$STATE/slurmd.pid"
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    if ! wait_for 120 "node $HOST to be idle (see /var/log/slurm/slurmd.log)" node_ready; then
        sinfo -N -l >&2
        exit 1
    fi
}

mkdir -p "$STATE"
install_packages
start_munge
start_mariadb
write_config
start_slurm
say "up: node $HOST, $CPUS CPUs, gres gpu:2, feature gpu_c7.0, account $ACCOUNT, partition debug"
