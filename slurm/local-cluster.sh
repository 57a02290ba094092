#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm`-marked tests and for trying
# `--launcher slurm` without a real cluster.
#
#   slurm/local-cluster.sh start    install (Debian packages) + configure + start + wait until idle
#   slurm/local-cluster.sh status   daemons, scontrol ping, sinfo, squeue
#   slurm/local-cluster.sh stop     stop slurmd, slurmctld and munged (by their pid files)
#
# Needs root and apt (Debian 12: SLURM 22.05). The daemons are started directly, not through
# systemd/invoke-rc.d, because containers usually have neither (policy-rc.d answers 101).
# Idempotent: `start` on a running, unchanged cluster only checks it; a changed slurm.conf is
# backed up, rewritten and the daemons restarted.
#
# Environment overrides (all optional):
#   LOCAL_SLURM_CONF=/etc/slurm/slurm.conf   where to write the configuration
#   LOCAL_SLURM_WAIT_S=60                    how long `start` waits for the node to become idle
#   LOCAL_SLURM_CRED_EXPIRE_S=30             credential lifetime; also the delay before a requeued
#                                            job may start again (SLURM's default is 120 s)
set -euo pipefail

CONF=${LOCAL_SLURM_CONF:-/etc/slurm/slurm.conf}
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}
CRED_EXPIRE_S=${LOCAL_SLURM_CRED_EXPIRE_S:-30}
NODE=$(hostname -s)
STATE_DIR=/var/lib/slurm
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid
MARKER="# written by replication slurm/local-cluster.sh"

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[local-cluster %5ss] %s\n' "$(elapsed)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

pid_alive() {  # pidfile -> 0 if the process in it is alive
    local f=$1 pid
    [[ -r $f ]] || return 1
    pid=$(cat "$f" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

stop_pidfile() {  # pidfile name
    local f=$1 name=$2 pid i
    if ! pid_alive "$f"; then
        say "$name: not running"
        rm -f "$f"
        return 0
    fi
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
    say "$name: stopped (pid $pid)"
}

slurm_version() { dpkg-query -W -f '${Version}' slurm-client 2>/dev/null || echo unknown; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, writes /etc/slurm, starts daemons)"; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "packages: slurmctld, slurmd, slurm-client, munge already installed (slurm $(slurm_version))"
        return 0
    fi
    say "packages: installing ${missing[*]} (apt-get, non-interactive)"
    # Keep the maintainer scripts from starting the daemons with the default configuration.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/local-cluster-apt.log 2>&1; then
        say "packages: install failed, running apt-get update and retrying"
        apt-get update -q >>/tmp/local-cluster-apt.log 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/local-cluster-apt.log 2>&1 \
            || { [[ $own_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d; die "apt-get install failed; see /tmp/local-cluster-apt.log"; }
    fi
    [[ $own_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    say "packages: installed (slurm $(slurm_version))"
}

ensure_munge() {
    getent passwd munge >/dev/null || die "user 'munge' missing (the munge package creates it)"
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge
    chmod 0755 /run/munge
    if [[ ! -s $MUNGE_KEY ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
        say "munge: created key $MUNGE_KEY"
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
    if pid_alive "$MUNGE_PID"; then
        say "munge: munged already running (pid $(cat $MUNGE_PID))"
    else
        rm -f "$MUNGE_PID"
        runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" \
            || die "munged failed to start; see /var/log/munge/munged.log"
        say "munge: started munged (pid $(cat $MUNGE_PID 2>/dev/null || echo '?'))"
    fi
    munge -n | unmunge >/dev/null || die "munge round trip failed (munge -n | unmunge)"
}

write_conf() {  # prints "changed" or "unchanged" on stdout
    local cpus mem_mb tmp
    cpus=$(nproc)
    # RealMemory a bit under the machine's (90 %), so the node is never drained for "Low RealMemory".
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    mkdir -p "$(dirname "$CONF")"
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
$MARKER
# One node ($NODE, $cpus CPUs, ${mem_mb} MB), one partition. Regenerate with: slurm/local-cluster.sh start
ClusterName=replication-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=cred_expire=$CRED_EXPIRE_S
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in containers: plain /proc process tracking, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# No mail on job events (the default MailProg does not exist here).
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
# Look at pending jobs every 5 s, not every 60/30 s: a requeued job restarts soon after it is eligible.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No slurmdbd: no accounting, so no sacct (submitit then logs "Bypassing sacct error").
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
JobRequeue=1
ReturnToService=2
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f $CONF ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        echo unchanged
        return 0
    fi
    if [[ -f $CONF ]]; then
        local bak
        bak="$CONF.bak.$(date +%Y%m%d%H%M%S)"
        cp -p "$CONF" "$bak"
        say "config: previous $CONF saved as $bak" >&2
    fi
    install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    echo changed
}

node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true; }

wait_idle() {
    local deadline=$(( $(date +%s) + WAIT_S )) st resumed=0
    while :; do
        st=$(node_state)
        case "$st" in
            idle|mixed|allocated|completing)
                say "node $NODE is $st: cluster ready"
                return 0 ;;
            down*|drain*|drained*|fail*)
                if [[ $resumed -eq 0 ]] && scontrol ping >/dev/null 2>&1; then
                    say "node $NODE is $st; asking slurmctld to resume it"
                    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi ;;
        esac
        if (( $(date +%s) >= deadline )); then
            say "node state after ${WAIT_S}s: '${st:-<no answer>}'"
            sinfo -R 2>/dev/null || true
            tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" 2>/dev/null || true
            die "node $NODE did not become idle within ${WAIT_S}s"
        fi
        sleep 1
    done
}

start() {
    need_root
    install_packages
    ensure_munge
    local changed
    changed=$(write_conf)
    say "config: $CONF $changed (node $NODE, CPUs=$(nproc), partition debug)"
    mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR" "$RUN_DIR"
    if [[ $changed == changed ]]; then
        pid_alive "$SLURMD_PID" && stop_pidfile "$SLURMD_PID" slurmd
        pid_alive "$CTLD_PID" && stop_pidfile "$CTLD_PID" slurmctld
    fi
    if pid_alive "$CTLD_PID"; then
        say "slurmctld: already running (pid $(cat $CTLD_PID))"
    else
        rm -f "$CTLD_PID"
        /usr/sbin/slurmctld -f "$CONF" || die "slurmctld failed to start; see $LOG_DIR/slurmctld.log"
        say "slurmctld: started"
    fi
    local i
    for i in $(seq 1 30); do
        scontrol ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer scontrol ping; see $LOG_DIR/slurmctld.log"
    if pid_alive "$SLURMD_PID"; then
        say "slurmd: already running (pid $(cat $SLURMD_PID))"
    else
        rm -f "$SLURMD_PID"
        /usr/sbin/slurmd -f "$CONF" || die "slurmd failed to start; see $LOG_DIR/slurmd.log"
        say "slurmd: started"
    fi
    wait_idle
    sinfo
    say "start done in $(elapsed) s"
}

status() {
    local rc=0
    for pair in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
        local name=${pair%%:*} f=${pair#*:}
        if pid_alive "$f"; then say "$name: running (pid $(cat "$f"))"; else say "$name: not running"; rc=1; fi
    done
    if command -v scontrol >/dev/null; then
        scontrol ping || rc=1
        sinfo 2>&1 || rc=1
        squeue 2>&1 || true
    else
        say "slurm-client not installed"
        rc=1
    fi
    return $rc
}

stop() {
    need_root
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$CTLD_PID" slurmctld
    stop_pidfile "$MUNGE_PID" munged
    say "stop done"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    restart) stop; start ;;
    *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
