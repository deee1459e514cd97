#!/usr/bin/env bash
# The cluster path on a real (local) Slurm: `simcollect slurm` as a 4-task array job plus a merge job
# (afterok), one shard failing and retried alone, the merged dataset identical to a one-process run of
# the same options; then `srun -n 2 pretrain` and `srun -n 2 adapt` as data-parallel ranks.
# usage: slurm_test.sh BIN_DIR. Fails (never skips) when Slurm cannot start, saying why.
set -uo pipefail
bin=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/embody_slurm_test.XXXXXX)
source "$here/local_slurm.sh"
trap 'slurm_stop; rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

if ! slurm_start "$tmp/cluster"; then
  echo "FAIL: the local Slurm cluster did not start: $SLURM_START_ERROR"
  exit 1
fi
echo "local Slurm up: $(sinfo -h -o '%P %t %c CPUs' | head -n 1)"
cd "$tmp"
opts=(--robot franka --episodes 12 --steps 24 --image-size 32 --seed 21)

# 1. The same collection in one process: the reference.
"$bin/simcollect" "${opts[@]}" --out ref.h5 > ref.log 2>&1 || { echo "FAIL: one-process collection"; cat ref.log; exit 1; }

# 2. The array job, with shard 2 doomed: a stale file that simcollect did not write sits at its path.
"$bin/simcollect" slurm "${opts[@]}" --out c.h5 --shards 4 > write.log 2>&1 || { echo "FAIL: simcollect slurm (write)"; cat write.log; exit 1; }
check "the array script is an array of 4 with the shard count fixed" "grep -q -- '--array=0-3' c.slurm/collect.sbatch && grep -q '/4\"' c.slurm/collect.sbatch"
echo junk > c.slurm/shard2of4.h5
# With the training job: pretrain then adapt on the merged data, 2 ranks each (srun), after the merge.
train=(--train --train-tasks 2 --models "$tmp/models" --pretrain-args "--steps 4 --batch 4 --probe-episodes 4"
  --adapt-args "--steps 4 --batch 4 --eval-every 2 --eval-seconds 0.4 --eval-episodes 2 --readout-episodes 4")
"$bin/simcollect" slurm "${opts[@]}" --out c.h5 --shards 4 --submit "${train[@]}" > submit.log 2>&1 || { echo "FAIL: submit"; cat submit.log; exit 1; }
cat submit.log
array=$(/usr/bin/python3 -c 'import json; print(json.load(open("c.slurm/jobs.json"))["array"])')
for _ in $(seq 120); do [ -z "$(squeue -h -j "$array" 2> /dev/null)" ] && break; sleep 0.5; done
check "shards 0, 1, 3 written by their array tasks" "[ -f c.slurm/shard0of4.h5 ] && [ -f c.slurm/shard1of4.h5 ] && [ -f c.slurm/shard3of4.h5 ]"
check "shard 2 failed with a clear message in its log" "grep -q 'was not made by simcollect' c.slurm/logs/collect_${array}_2.out"
check "the merge job waits (its dependency failed) and wrote nothing" "[ ! -e c.h5 ] && squeue -h -o '%r' | grep -q Dependency"
first_train=$(/usr/bin/python3 -c 'import json; print(json.load(open("c.slurm/jobs.json"))["train"])')
check "the training job waits on the merge" "squeue -h -j $first_train -o '%r %E' | grep -q 'Dependency.*afterok'"

check "the job folder refuses other options" \
  "! '$bin/simcollect' slurm --robot franka --episodes 12 --steps 24 --image-size 32 --seed 99 --out c.h5 --shards 4 2> e1.err && grep -q 'other options' e1.err"
check "the job folder refuses another split of its shards" \
  "! '$bin/simcollect' slurm \"\${opts[@]}\" --out c.h5 --shards 3 2> e2.err && grep -q '4-way split' e2.err"

# 3. Fix the cause and resubmit shard 2 alone (plus a fresh merge job; the stale one is cancelled).
rm c.slurm/shard2of4.h5
"$bin/simcollect" slurm "${opts[@]}" --out c.h5 --shards 4 --retry 2 "${train[@]}" > retry.log 2>&1 || { echo "FAIL: --retry"; cat retry.log; exit 1; }
cat retry.log
check "the queue drains after the retry" "slurm_wait_empty 120"
check "only shard 2 ran again" "[ \$(ls c.slurm/logs | grep -c '^collect_') -eq 5 ]"
check "the merge job merged 4 shards" "grep -q 'merged 4 shards' c.slurm/logs/merge_*.out"
check "the merged dataset equals the one-process run (every array of every episode)" \
  "/usr/bin/python3 '$here/compare_datasets.py' ref.h5 c.h5"
# The comparison can fail: another seed gives other episodes.
"$bin/simcollect" --robot franka --episodes 12 --steps 24 --image-size 32 --seed 22 --out other.h5 > /dev/null 2>&1
check "the comparison tells another seed apart" "! /usr/bin/python3 '$here/compare_datasets.py' ref.h5 other.h5 > /dev/null"

# 4. Data-parallel training as Slurm launches it: srun -n 2.
check "the training job ran pretrain and adapt as 2 ranks each, after the merge" \
  "[ \$(grep -c '2 data-parallel ranks (slurm)' c.slurm/logs/train_*.out) -eq 2 ] && [ -f '$tmp/models/encoder.pt' ] && [ -f '$tmp/models/franka/model.pt' ] && [ -f '$tmp/models/franka/metrics.json' ]"
check "the first training job (its merge cancelled) never ran" "[ \$(ls c.slurm/logs | grep -c '^train_') -eq 1 ]"
if [ $fail -ne 0 ]; then
  for f in c.slurm/logs/train_*.out; do [ -f "$f" ] && { echo "--- $f"; tail -n 12 "$f"; }; done
  exit 1
fi
echo "PASS"
