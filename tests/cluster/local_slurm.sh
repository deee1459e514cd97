# A throwaway Slurm cluster on localhost for tests: munged, slurmctld and slurmd with a generated
# slurm.conf in a temporary folder (free ports, own munge key and socket), nothing in /etc touched.
#   source local_slurm.sh; slurm_start DIR || echo "$SLURM_START_ERROR"; ...; slurm_stop
# slurm_start exports SLURM_CONF, so sbatch/srun/squeue talk to this cluster.

slurm_start() {
  local dir=$1
  SLURM_DIR=$dir
  SLURM_START_ERROR=""
  local tool
  for tool in munged slurmctld slurmd sbatch srun squeue sinfo scancel; do
    if ! command -v "$tool" > /dev/null 2>&1; then
      SLURM_START_ERROR="$tool is not installed (scripts/install-deps.sh installs slurmctld slurmd slurm-client munge)"
      return 1
    fi
  done
  mkdir -p "$dir/state" "$dir/spool"
  # munged refuses a key or socket folder others can write to.
  chmod 700 "$dir"
  head -c 1024 /dev/urandom > "$dir/munge.key" && chmod 600 "$dir/munge.key"
  if ! munged --force --key-file="$dir/munge.key" --socket="$dir/munge.sock" --pid-file="$dir/munged.pid" \
       --log-file="$dir/munged.log" --seed-file="$dir/munge.seed" 2> "$dir/munged.err"; then
    SLURM_START_ERROR="munged did not start: $(tail -n 3 "$dir/munged.err" "$dir/munged.log" 2> /dev/null | tr '\n' ' ')"
    return 1
  fi
  local ports host user cpus
  ports=$(/usr/bin/python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
  host=$(hostname -s)
  user=$(id -un)
  cpus=8  # more than the cores: the array's tasks run side by side (config_overrides trusts this)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=embodytest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=${ports% *}
SlurmdPort=${ports#* }
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
PlugStackConfig=/dev/null
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  if ! slurmctld -i -f "$SLURM_CONF" 2> "$dir/slurmctld.err"; then
    SLURM_START_ERROR="slurmctld did not start: $(tail -n 3 "$dir/slurmctld.err" "$dir/slurmctld.log" 2> /dev/null | tr '\n' ' ')"
    return 1
  fi
  if ! slurmd -f "$SLURM_CONF" 2> "$dir/slurmd.err"; then
    SLURM_START_ERROR="slurmd did not start: $(tail -n 3 "$dir/slurmd.err" "$dir/slurmd.log" 2> /dev/null | tr '\n' ' ')"
    return 1
  fi
  local i
  for i in $(seq 60); do
    if sinfo -h -o '%t' 2> /dev/null | grep -qx idle; then return 0; fi
    sleep 0.5
  done
  SLURM_START_ERROR="the node never became idle: $(sinfo 2>&1 | tail -n 2 | tr '\n' ' ') $(tail -n 3 "$dir/slurmd.log" 2> /dev/null | tr '\n' ' ')"
  return 1
}

# Waits until the queue is empty (at most $1 seconds); 1 on timeout.
slurm_wait_empty() {
  local i
  for i in $(seq $(($1 * 2))); do
    [ -z "$(squeue -h 2> /dev/null)" ] && return 0
    sleep 0.5
  done
  return 1
}

slurm_stop() {
  [ -n "${SLURM_DIR:-}" ] || return 0
  local daemon pid
  for daemon in slurmd slurmctld munged; do
    if [ -f "$SLURM_DIR/$daemon.pid" ]; then
      pid=$(cat "$SLURM_DIR/$daemon.pid")
      kill "$pid" 2> /dev/null
      for _ in $(seq 20); do kill -0 "$pid" 2> /dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2> /dev/null
    fi
  done
  SLURM_DIR=""
}
