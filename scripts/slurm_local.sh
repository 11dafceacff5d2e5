#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try the SLURM launcher (conf/hydra/launcher/slurm.yaml) without a
# real cluster. The tests in tests/sweeps/test_slurm.py run against it; `make test` (as root) brings it up and stops it.
#
#   scripts/slurm_local.sh install   # apt-get install slurm-wlm munge (Debian/Ubuntu, as root)
#   scripts/slurm_local.sh start     # munged, slurmctld, slurmd; waits until the node takes jobs (twice = fine)
#   scripts/slurm_local.sh up        # install (only when the packages are missing), then start: what `make test` runs
#   scripts/slurm_local.sh status    # exit 0 when the cluster takes jobs, 3 when it is down
#   scripts/slurm_local.sh stop      # cancels its jobs, stops the daemons, removes its slurm.conf (twice = fine)
#
# Needs root (the daemons run as root, and SLURM reads /etc/slurm/slurm.conf) and the Debian packages slurm-wlm and
# munge. State, spool, logs and the munge socket live in $BEFT_SLURM_DIR (default /tmp/beft-slurm). The node has
# every CPU of the machine and its memory less 2000 MB, no GPUs; one partition, `local`, the default one. Jobs can be
# requeued (JobRequeue=1); a requeued job may start again after about 10 s (cred_expire; SLURM's default: 120 s).
# A cancelled job is killed 2 s after its SIGTERM (KillWait; submitit ignores SIGTERM anyway).
# /etc/slurm/slurm.conf is written only when it is absent or was written by this script: a real cluster's is never
# touched. Without slurmdbd there is no accounting: `sacct` fails, submitit warns ("Bypassing sacct error"), and the
# launcher follows its jobs with squeue (beft/sweeps/collect.py).
set -euo pipefail

DIR=${BEFT_SLURM_DIR:-/tmp/beft-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by beft scripts/slurm_local.sh"
KEY=/etc/munge/munge.key
PARTITION=local
PACKAGES="slurm-wlm munge"

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (the SLURM and munge daemons run as root here); run it with sudo"
}

need_packages() {
    local missing=()
    for bin in munged munge slurmctld slurmd sbatch squeue scontrol sinfo; do
        command -v "$bin" >/dev/null || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: install the packages with
    scripts/slurm_local.sh install
or  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES"
}

alive() {  # alive <pid file>: the daemon it names runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

ours() {  # the installed slurm.conf is this script's
    [ -f "$CONF" ] && [[ "$(head -n 1 "$CONF")" == "$MARK"* ]]
}

takes_jobs() {  # slurmctld answers and the node is idle, mixed or allocated
    ours || return 1
    scontrol ping 2>/dev/null | grep -q "is UP" || return 1
    sinfo --noheader --nodes "$(hostname -s)" --format %T 2>/dev/null | grep -Eq "^(idle|mixed|allocated|completing)"
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 2000 ))
    [ "$mem" -ge 512 ] || mem=512
    mkdir -p "$(dirname "$CONF")"
    cat > "$CONF.tmp" <<EOF
$MARK: a one-node cluster for trying beft's SLURM launcher; stop removes it
ClusterName=beft-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
JobRequeue=1
KillWait=2
MinJobAge=600
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

start() {
    if takes_jobs; then
        say "already up (partition $PARTITION, state in $DIR)"
        return 0
    fi
    need_root start
    need_packages
    if [ -f "$CONF" ] && ! ours; then
        die "$CONF exists and was not written by this script: this machine has a SLURM set-up of its own; use it"
    fi
    mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log"
    chmod 755 "$DIR" "$DIR/munge"
    if [ ! -s "$KEY" ]; then
        mkdir -p "$(dirname "$KEY")"
        dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
        chown munge:munge "$KEY" 2>/dev/null || true
        chmod 400 "$KEY"
        say "created $KEY"
    fi
    if ! alive "$DIR/munge/munged.pid"; then
        munged --force --socket="$DIR/munge/munge.socket" --pid-file="$DIR/munge/munged.pid" \
            --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    fi
    write_conf
    alive "$DIR/slurmctld.pid" || slurmctld
    alive "$DIR/slurmd.pid" || slurmd
    local host
    host=$(hostname -s)
    for _ in $(seq 60); do
        takes_jobs && break
        # a node left down or drained by an earlier unclean stop
        if sinfo --noheader --nodes "$host" --format %T 2>/dev/null | grep -Eq "^(down|drain)"; then
            scontrol update nodename="$host" state=resume 2>/dev/null || true
        fi
        sleep 0.5
    done
    if ! takes_jobs; then
        echo "slurm_local: the cluster did not come up within 30 s; logs in $DIR/log:" >&2
        tail -n 5 "$DIR"/log/*.log >&2 || true
        exit 1
    fi
    say "up: partition $PARTITION (default), node $host, $(nproc) CPUs, no GPUs; state and logs in $DIR"
    say "try: python -m beft.train -m task=rte bias=v,q hydra/launcher=slurm hydra.launcher.gpus_per_node=0 \\"
    say "       hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2 hydra.launcher.timeout_min=30"
}

stop() {
    if ! ours && ! alive "$DIR/slurmctld.pid" && ! alive "$DIR/slurmd.pid" && ! alive "$DIR/munge/munged.pid"; then
        say "already stopped"
        return 0
    fi
    need_root stop
    if ours && scontrol ping 2>/dev/null | grep -q "is UP"; then
        local jobs
        jobs=$(squeue --noheader --format %A 2>/dev/null | sort -u | tr '\n' ' ')
        if [ -n "${jobs// /}" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            say "cancelled jobs $jobs"
        fi
    fi
    local pidfile
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        if alive "$pidfile"; then
            local pid
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    if ours; then
        rm -f "$CONF"
    fi
    say "stopped (state and logs kept in $DIR)"
}

status() {
    local name pidfile up=0
    for name in munged slurmctld slurmd; do
        case $name in
            munged) pidfile=$DIR/munge/munged.pid ;;
            *) pidfile=$DIR/$name.pid ;;
        esac
        if alive "$pidfile"; then say "$name: running (pid $(cat "$pidfile"))"; else say "$name: not running"; fi
    done
    if takes_jobs; then
        sinfo
        squeue
        say "up: partition $PARTITION takes jobs"
    else
        say "down: run scripts/slurm_local.sh start"
        up=3
    fi
    return $up
}

install() {
    need_root install
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null
    say "installed $PACKAGES"
}

up() {
    if takes_jobs; then
        say "already up (partition $PARTITION, state in $DIR)"
        return 0
    fi
    need_root up
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        command -v apt-get >/dev/null || die "the packages $PACKAGES are missing and there is no apt-get to install them"
        install
    fi
    start
}

case "${1:-}" in
    up) up ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    install) install ;;
    *) echo "usage: $0 install|start|up|stop|status" >&2; exit 2 ;;
esac
