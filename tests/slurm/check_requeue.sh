#!/usr/bin/env bash
# cluster/slurm/*.sbatch under a real Slurm, on the CPU: a one-node Slurm (munge, slurmctld,
# slurmd) started here with a generated configuration, each script submitted with 2 tasks in CPU
# mode (the multi-node one on this one node, through srun --mpi=pmix), a SIGUSR1 sent to the
# batch script mid-run (as --signal=B:USR1@180 does before a time limit): the ranks checkpoint and exit 138, the script requeues the job, the requeued job
# resumes from that checkpoint and ends with the loss of an uninterrupted run of the same steps.
# Exit 77 (ctest's skip) only where Slurm cannot start.
# Usage: tests/slurm/check_requeue.sh AIOS_BINARY WORK_DIR
set -uo pipefail
aios=$(realpath "$1"); work=$2
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
# The scratch folder is emptied only when an earlier run of a test made it (tests/reference/scratch.py).
if [ -d "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -f "$work/.aios-test-scratch" ]; then
  echo "$work: exists and was not made by an aios test; give an empty or new folder"; exit 1
fi
rm -rf "$work"; mkdir -p "$work"; work=$(realpath "$work"); touch "$work/.aios-test-scratch"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAILED: $*"; for f in "$work"/slurm-*.out "$work/slurmctld.log" "$work/slurmd.log"; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done; exit 1; }
for tool in munged slurmctld slurmd sbatch scontrol squeue; do
  command -v $tool >/dev/null || skip "$tool is not installed (scripts/install_deps.sh installs slurm-wlm and munge)"
done
[ "$(id -u)" = 0 ] || skip "starting slurmd needs root"

# ---- a one-node Slurm of this machine's CPUs ----
host=$(hostname -s)
export SLURM_CONF=$work/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=aiostest
SlurmctldHost=$host
SlurmctldPort=$((16817 + $$ % 500))
SlurmdPort=$((17817 + $$ % 500))
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmdSpoolDir=$work/spool
StateSaveLocation=$work/state
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc --all) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p "$work/spool" "$work/state" /etc/munge /run/munge /var/log/munge /var/lib/munge
[ -f /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chmod 400 /etc/munge/munge.key; }
pgrep -x munged >/dev/null || munged --force || skip "munged does not start"
slurmctld -c || skip "slurmctld does not start"
slurmd -c || skip "slurmd does not start"
stop_slurm() { kill "$(cat "$work/slurmd.pid" 2>/dev/null)" "$(cat "$work/slurmctld.pid" 2>/dev/null)" 2>/dev/null; }
trap stop_slurm EXIT
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %T | grep -q idle || skip "the Slurm node does not come up ($(sinfo -h -o %T 2>&1))"

# ---- the data, and a CPU configuration for the shipped script ----
mkdir -p "$work/corpus"
python3 "$source_dir/scripts/make_demo_corpus.py" "$work/corpus" --bytes 400000 --files 2 --seed 3 >/dev/null
"$aios" prepare "$work/corpus" --output "$work/shards" >/dev/null || fail "prepare"
cat > "$work/cpu.toml" <<CONF
model = "tiny"
n-layer = 2
n-head = 2
n-embd = 64
window-size = 32
batch-size = 4
steps = 300
warmup-steps = 10
device = "cpu"
amp = false
eval-batches = 0
checkpoint-minutes = 0
CONF
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mkdir -p "$work/repo"; ln -s "$source_dir/cluster" "$work/repo/cluster"; mkdir -p "$work/repo/build"
ln -s "$aios" "$work/repo/build/aios"
cd "$work/repo"

# ---- the same steps without interruption: what each requeued job must end with ----
mpirun -np 2 --oversubscribe "$aios" train --config "$work/cpu.toml" --dataset-file "$work/shards" \
  --out-dir "$work/straight" --log-file "$work/straight/metrics.jsonl" >/dev/null 2>&1 || fail "the straight run"
straight=$(grep '"type":"step"' "$work/straight/metrics.jsonl" | tail -1)
loss_of() { echo "$1" | sed -E 's/.*"loss":([^,}]+).*/\1/'; }
step_of() { echo "$1" | sed -E 's/.*"step":([0-9]+).*/\1/'; }

# One script's cycle: submit with 2 tasks in CPU mode, SIGUSR1 to the batch script mid-run (as
# --signal=B:USR1@180 sends it before the time limit), the ranks checkpoint and exit 138, the
# script requeues, the requeued job resumes and ends with the uninterrupted run's loss.
requeue_cycle() {
  local script=$1 run=$work/run-$(basename "$1" .sbatch) job state stopped_at last resumed
  shift
  job=$(RUN="$run" DATA="$work/shards" CONFIG="$work/cpu.toml" sbatch --parsable "$@" --ntasks-per-node=2 \
    --gpus-per-node=0 --cpus-per-task=1 --time=10 "$script") || fail "sbatch $script"
  echo "$script: job $job submitted at $(date +%T)"
  for _ in $(seq 120); do
    [ "$(grep -c '"type":"step"' "$run/metrics.jsonl" 2>/dev/null || echo 0)" -ge 40 ] && break; sleep 0.5
  done
  [ -f "$run/metrics.jsonl" ] || fail "$script: the job did not start training"
  scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1"
  echo "$script: SIGUSR1 sent at step $(grep -c '"type":"step"' "$run/metrics.jsonl")"
  echo "  at $(date +%T)"
  local pending_polls=0
  for _ in $(seq 360); do
    state=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
    # Slurm holds a requeued job for two minutes (its eligible time); a real cluster waits, the test
    # need not (scontrol update takes the time as StartTime). Not in the first seconds: slurmd
    # refuses to launch a job in the second its previous instance's credential was revoked.
    [ "$state" = PENDING ] && pending_polls=$((pending_polls + 1))
    [ "$state" = PENDING ] && [ $pending_polls -gt 4 ] && scontrol update JobId="$job" StartTime=now >/dev/null 2>&1
    [ "$(grep -c '"event":"stopped"' "$run/metrics.jsonl")" -ge 1 ] && [ "$state" = COMPLETED ] && break
    [ "$state" = FAILED ] || [ "$state" = CANCELLED ] && fail "$script: job state $state"
    sleep 0.5
  done
  echo "  completed at $(date +%T)"
  [ "$state" = COMPLETED ] || fail "$script: the job did not complete after the requeue (state $state)"
  grep -q "requeueing job $job" "$work"/repo/slurm-*-"$job".out || fail "$script: the script did not requeue"
  stopped_at=$(grep '"event":"stopped"' "$run/metrics.jsonl" | head -1 | sed -E 's/.*"step":([0-9]+).*/\1/')
  last=$(grep '"type":"step"' "$run/metrics.jsonl" | tail -1)
  resumed=$(grep -c '"resumed_from_step":'"$stopped_at" "$run/metrics.jsonl")
  [ "$resumed" -ge 1 ] || fail "$script: the requeued job did not resume from step $stopped_at"
  [ "$(step_of "$last")" = 300 ] || fail "$script: the requeued run ended at step $(step_of "$last")"
  [ "$(loss_of "$last")" = "$(loss_of "$straight")" ] ||
    fail "$script: step 300 loss $(loss_of "$last") after the requeue, $(loss_of "$straight") without"
  echo "$script: stopped at step $stopped_at by SIGUSR1, requeued, resumed; step 300 loss $(loss_of "$last") equals the uninterrupted run's"
}

# One node through mpirun; the multi-node script's srun --mpi=pmix path on this one node.
requeue_cycle cluster/slurm/one-node-8gpu.sbatch
requeue_cycle cluster/slurm/multi-node.sbatch --nodes=1
