#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests/test_slurm.py (no systemd needed).
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge if they are missing, writes
# /etc/slurm/slurm.conf for one node (this host at 127.0.0.1, all its CPUs, ~90% of its memory,
# no accounting), starts munged, slurmctld and slurmd, and waits until the node is idle.
# Idempotent: if the cluster is already up it only says so. .ci/slurm-down.sh stops the daemons
# by their PID files. Needs root and apt-get; without them it fails loudly (exit 2).
set -euo pipefail

MARKER="# Written by latentsky .ci/slurm-up.sh (a throwaway single-node test cluster)."
CONF=/etc/slurm/slurm.conf
STATE=/var/lib/slurm-latentsky
LOGS=/var/log/slurm-latentsky
WAIT_S=${SLURM_UP_WAIT_S:-90}

say() { echo "slurm-up: $*"; }
die() {
    echo "" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "slurm-up: FAILED: $*" >&2
    echo "slurm-up: the Slurm tests cannot run (REQUIRE_SLURM=1 makes them fail)." >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    exit 2
}

cluster_idle() {
    command -v sinfo > /dev/null && scontrol ping 2> /dev/null | grep -q "is UP" &&
        sinfo --noheader --node "$(hostname -s)" --format=%T 2> /dev/null | grep -qx "idle"
}

started=$(date +%s)
if cluster_idle; then
    say "cluster already up: $(sinfo --noheader --Node --format='%N %T %c CPUs %m MB')"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons); run: sudo bash $0"

if ! command -v slurmctld > /dev/null || ! command -v slurmd > /dev/null ||
    ! command -v sbatch > /dev/null || ! command -v munged > /dev/null; then
    command -v apt-get > /dev/null || die "apt-get not found: install slurmctld slurmd slurm-client munge by hand"
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge > /dev/null ||
        die "apt-get install slurmctld slurmd slurm-client munge failed"
fi

# --- munge: the authentication daemon, run as its own user ---------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
mkdir -p /var/log/munge /var/lib/munge
chown munge:munge /var/log/munge /var/lib/munge
if ! munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do
        munge -n 2> /dev/null | unmunge > /dev/null 2>&1 && break
        sleep 0.2
    done
    munge -n | unmunge > /dev/null || die "munged did not start (see /var/log/munge/munged.log)"
fi

# --- slurm.conf: one node, no accounting ------------------------------------------------------------
if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a real cluster's configuration"
fi
host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p "$STATE/ctld" "$STATE/d" "$LOGS"
cat > "$CONF" << EOF
$MARKER
# One node, this host at 127.0.0.1, with its $cpus CPUs and ~90% of its memory.
ClusterName=latentsky
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# No cgroups, no accounting database: processes are tracked through /proc. The plugin's default
# status check (sacct) fails without accounting, so runs use --slurm-status-command squeue, which
# sees finished jobs for MinJobAge seconds (at least 3 x --slurm-init-seconds-before-status-checks).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MinJobAge=3600
ReturnToService=2
DefMemPerCPU=1000
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

# --- the daemons -----------------------------------------------------------------------------------
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2> /dev/null; }
if ! running /run/slurmctld.pid; then
    say "starting slurmctld"
    slurmctld -c || die "slurmctld did not start (see $LOGS/slurmctld.log)"
fi
for _ in $(seq 50); do
    scontrol ping 2> /dev/null | grep -q "is UP" && break
    sleep 0.2
done
scontrol ping | grep -q "is UP" || die "slurmctld does not answer (see $LOGS/slurmctld.log)"
if ! running /run/slurmd.pid; then
    say "starting slurmd"
    slurmd || die "slurmd did not start (see $LOGS/slurmd.log)"
fi

deadline=$((SECONDS + WAIT_S))
until cluster_idle; do
    state=$(sinfo --noheader --node "$host" --format=%T 2> /dev/null || true)
    if [[ $state == down* || $state == drain* ]]; then
        scontrol update NodeName="$host" State=RESUME 2> /dev/null || true
    fi
    ((SECONDS < deadline)) || die "node $host is not idle after ${WAIT_S}s (state: ${state:-none}; see $LOGS/)"
    sleep 1
done
say "cluster up in $(($(date +%s) - started)) s: $(sinfo --noheader --Node --format='%N %T %c CPUs %m MB')"
