#!/usr/bin/env bash
# Stop the daemons that .ci/slurm-up.sh started, by their PID files (slurmd, slurmctld, munged).
# Idempotent: a daemon that is not running is skipped. Leaves packages and configuration in place.
set -euo pipefail

say() { echo "slurm-down: $*"; }

[[ $(id -u) -eq 0 ]] || {
    echo "slurm-down: FAILED: must run as root to stop the Slurm daemons" >&2
    exit 2
}
if [[ -e /etc/slurm/slurm.conf ]] &&
    ! grep -qF "# Written by latentsky .ci/slurm-up.sh" /etc/slurm/slurm.conf; then
    echo "slurm-down: FAILED: /etc/slurm/slurm.conf is not ours; not stopping a real cluster" >&2
    exit 2
fi

stop() { # stop NAME PIDFILE: SIGTERM the process in PIDFILE if it is NAME, wait up to 20 s
    local name=$1 pidfile=$2 pid
    if [[ ! -s $pidfile ]]; then
        say "$name: no PID file ($pidfile), not running"
        return
    fi
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2> /dev/null; then
        say "$name: PID $pid is gone"
        rm -f "$pidfile"
        return
    fi
    if [[ $(cat "/proc/$pid/comm" 2> /dev/null) != "$name"* ]]; then
        say "$name: PID $pid from $pidfile is $(cat "/proc/$pid/comm" 2> /dev/null), not $name; left alone"
        return
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2> /dev/null; then
        say "$name: PID $pid ignored SIGTERM for 20 s; sending SIGKILL"
        kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    say "$name: stopped (PID $pid)"
}

stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
