#!/usr/bin/env bash
# A real two-node SLURM cluster on this one machine, for the tests of `d2v train --slurm`.
#
#   tests/helpers/slurm_cluster.sh start DIR   # installs slurm-wlm and munge if missing (root only),
#                                              # starts munged, slurmctld and slurmd n1 / n2; prints
#                                              # `export SLURM_CONF=DIR/slurm.conf`
#   tests/helpers/slurm_cluster.sh stop DIR    # stops the daemons this script started (their pid files)
#
# Two nodes on one host: n1 and n2 resolve to 127.0.0.1 (an /etc/hosts line, added if missing),
# slurmd ports 17001 and 17002, one partition `local` of both. Everything else lives in DIR.
set -euo pipefail
cmd=${1:?start or stop}; dir=$(mkdir -p "${2:?a state directory}" && cd "$2" && pwd)

if [ "$cmd" = stop ]; then
  for pid_file in "$dir"/slurmd-n1.pid "$dir"/slurmd-n2.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -f "$pid_file" ] || continue
    pid=$(cat "$pid_file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "slurm-wlm and munge are not installed and this is not root" >&2; exit 3; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
[ "$(id -u)" = 0 ] || { echo "starting slurmd needs root" >&2; exit 3; }

grep -qE '^127\.0\.0\.1[[:space:]].*\bn1\b' /etc/hosts || echo "127.0.0.1 n1 n2" >> /etc/hosts

# munge: its key, and run/log dirs owned by its user
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n >/dev/null 2>&1; then
  # its pid file where the munge user may write; a copy here says this script started it
  runuser -u munge -- munged --force --pid-file=/run/munge/munged-d2v.pid
  cp /run/munge/munged-d2v.pid "$dir/munged.pid"
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
fi

cpus=$(nproc)
mkdir -p "$dir/state" "$dir/spool"
cat > "$dir/slurm.conf" <<CONF
ClusterName=d2vlocal
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=3
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=n1 NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=17001 CPUs=$cpus State=UNKNOWN
NodeName=n2 NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=17002 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
CONF
export SLURM_CONF="$dir/slurm.conf"
[ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null || slurmctld -f "$SLURM_CONF"
for node in n1 n2; do
  [ -f "$dir/slurmd-$node.pid" ] && kill -0 "$(cat "$dir/slurmd-$node.pid")" 2>/dev/null || slurmd -f "$SLURM_CONF" -N "$node"
done
for _ in $(seq 100); do
  idle=$(sinfo -h -N -o "%N %t" 2>/dev/null | grep -c idle || true)
  [ "$idle" = 2 ] && break
  sleep 0.2
done
[ "$idle" = 2 ] || { echo "the local cluster did not come up: $(sinfo -N 2>&1)" >&2; exit 4; }
echo "export SLURM_CONF=$SLURM_CONF"
