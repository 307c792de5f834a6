#!/usr/bin/env bash
# A throw-away single-node SLURM cluster (slurmctld + slurmd + munged) for CI and local development.
#
#   scripts/slurm/local_cluster.sh start   # install if needed (root, Debian), write slurm.conf, start, wait for idle
#   scripts/slurm/local_cluster.sh stop    # stop every daemon this script started, by process id
#   scripts/slurm/local_cluster.sh status
#
# Clients (sinfo, sbatch, the tests) need `export SLURM_CONF=$SONGBLOOM_SLURM_DIR/slurm.conf`; `start` prints it.
# State lives in $SONGBLOOM_SLURM_DIR (default /tmp/songbloom-slurm); nothing is written to /etc/slurm.
# Facts behind the settings: docs/slurm.md ("the local test cluster").
set -euo pipefail

DIR=${SONGBLOOM_SLURM_DIR:-/tmp/songbloom-slurm}
export SLURM_CONF=$DIR/slurm.conf
MUNGE_PID=/run/munge/munged.pid
WAIT_S=${SONGBLOOM_SLURM_WAIT_S:-30}

log() { echo "[local_cluster] $*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "slurm is not installed and this is not root: apt-get install slurmctld slurmd slurm-client munge"; exit 1
  fi
  log "installing slurm and munge (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  [ -s /etc/munge/munge.key ] || mungekey --create --force
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  if [ -f "$MUNGE_PID" ] && kill -0 "$(cat "$MUNGE_PID")" 2>/dev/null; then
    log "munged already running (pid $(cat "$MUNGE_PID"))"
  else
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/.started_munged"   # stop only what we started
  fi
  for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "munge does not answer"; exit 1
}

write_conf() {
  local host ncpu
  host=$(hostname -s)
  ncpu=$(nproc)
  # Declare at least 4 CPUs so a 2-rank job and array tasks fit on a 2-core CI machine; config_overrides keeps
  # slurmd from draining a node that has fewer cores than declared.
  [ "$ncpu" -ge 4 ] || ncpu=4
  cat > "$SLURM_CONF" <<CONF
ClusterName=songbloom-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
KillWait=5
MinJobAge=300
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$ncpu State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    log "already running (SLURM_CONF=$SLURM_CONF)"; echo "export SLURM_CONF=$SLURM_CONF"; return 0
  fi
  install_packages
  rm -rf "$DIR"
  mkdir -p "$DIR"/{state,spool,log}
  start_munge
  write_conf
  slurmctld
  slurmd
  for _ in $(seq $((WAIT_S * 5))); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
      log "cluster up: $(sinfo -h -o '%P %a %D %T %N' | head -1)"
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.2
  done
  log "the node did not become idle within ${WAIT_S}s; logs in $DIR/log"
  sinfo -N -l >&2 || true
  tail -n 20 "$DIR"/log/*.log >&2 || true
  return 1
}

wait_pid_gone() {  # pid, tenths of a second to wait; SIGKILL if still alive
  local p=$1 n=$2
  for _ in $(seq "$n"); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $p still alive: SIGKILL"
  kill -9 "$p" 2>/dev/null || true
}

stop() {
  local pids="" f p
  # scontrol shutdown deletes the pid files before the daemons exit: read them first.
  for f in "$DIR/slurmctld.pid" "$DIR/slurmd.pid"; do
    [ -f "$f" ] && pids="$pids $(cat "$f")"
  done
  if [ -n "$pids" ]; then
    timeout 20 scontrol shutdown >/dev/null 2>&1 || true
    for p in $pids; do wait_pid_gone "$p" 100; done
  fi
  if [ -f "$DIR/.started_munged" ] && [ -f "$MUNGE_PID" ]; then
    p=$(cat "$MUNGE_PID")
    kill "$p" 2>/dev/null || true
    wait_pid_gone "$p" 100
    rm -f "$DIR/.started_munged"
  fi
  log "stopped"
}

status() {
  sinfo 2>/dev/null || { log "not running (SLURM_CONF=$SLURM_CONF)"; return 1; }
  squeue 2>/dev/null || true
}

case "${1:-}" in
  start|stop|status) "$1" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
