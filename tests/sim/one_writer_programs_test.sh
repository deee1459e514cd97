#!/usr/bin/env bash
# One writer per output, program by program (sim/output_lock.h): while one real run of a program
# holds its output (stopped with SIGSTOP right after it took the lock, so the test does not race
# it), a second run on the same output is refused at once naming the first's pid, and leaves the
# first's output alone; the first then finishes with a complete, valid output. Also: --overwrite
# and --resume of an output in use are refused; a kill -9'd holder's stale lock is taken over;
# two encoders of one latent cache wait for each other and both succeed; merge refuses an OUT that
# a collection is writing.
# Usage: one_writer_programs_test.sh BIN_DIR
set -euo pipefail
bin=$1
dir=$(mktemp -d)
stopped=()
cleanup() {
  for p in "${stopped[@]}"; do kill -CONT "$p" 2> /dev/null || true; done
  jobs -p | xargs -r kill 2> /dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
export LP_NUM_THREADS=0
fail() {
  echo "one_writer_programs_test: FAIL: $*" >&2
  exit 1
}

# Waits until the program with pid $1 holds the lock of output $2 (its lock file names it), then stops it.
hold_stopped() {
  local pid=$1 lock=$2.lock
  for _ in $(seq 1 6000); do
    if [ -s "$lock" ] && grep -q "^pid $pid " "$lock"; then
      kill -STOP "$pid"
      stopped+=("$pid")
      return 0
    fi
    kill -0 "$pid" 2> /dev/null || fail "pid $pid ended before it held $2"
    sleep 0.02
  done
  fail "pid $pid never held $2"
}
resume() {
  kill -CONT "$1"
  wait "$1" || fail "the first writer (pid $1) failed after the refusal"
}
# Runs a command that must be refused because pid $1 writes output $2.
expect_refused() {
  local pid=$1 out=$2
  shift 2
  if "$@" > "$dir/refused.out" 2> "$dir/refused.err"; then fail "not refused: $*"; fi
  grep -q "$out is being written by pid $pid on $(hostname) since " "$dir/refused.err" ||
    fail "refusal does not name pid $pid: $(cat "$dir/refused.err") [$*]"
  [ "$(wc -l < "$dir/refused.err")" -eq 1 ] || fail "more than one line: $(cat "$dir/refused.err")"
}

# simcollect: the issue's case (a second collection with --overwrite on the first's output), then
# --resume and plain; the first's dataset complete afterwards.
"$bin/simcollect" --robot franka --episodes 20 --steps 20 --image-size 32 --seed 5 --workers 1 --out "$dir/cc.h5" > /dev/null 2>&1 &
first=$!
hold_stopped $first "$dir/cc.h5"
expect_refused $first "$dir/cc.h5" "$bin/simcollect" --robot ur5 --episodes 3 --steps 8 --seed 6 --out "$dir/cc.h5" --overwrite
expect_refused $first "$dir/cc.h5" "$bin/simcollect" --robot franka --episodes 20 --steps 20 --image-size 32 --seed 5 --out "$dir/cc.h5" --resume
expect_refused $first "$dir/cc.h5" "$bin/simcollect" merge "$dir/cc.h5" "$dir/none.h5" --overwrite
resume $first
"$bin/simcollect" info "$dir/cc.h5" > "$dir/info.txt"
grep -q "franka" "$dir/info.txt" || fail "cc.h5 is not franka's after the refused ur5 run"
/usr/bin/python3 - "$dir/cc.h5" << 'PY' || fail "cc.h5 incomplete"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    demos = sorted(f["data"].keys())
    assert len(demos) == 20, demos
    for d in demos:
        assert f["data"][d]["actions"].shape == (20, 7), (d, f["data"][d]["actions"].shape)
PY
[ ! -e "$dir/cc.h5.lock" ] || fail "the lock file outlived its holder"

# kill -9 of a holder: its lock file stays, and the next run takes the output over silently.
"$bin/simcollect" --robot franka --episodes 6 --steps 12 --image-size 32 --seed 5 --workers 1 --out "$dir/killed.h5" > /dev/null 2>&1 &
victim=$!
hold_stopped $victim "$dir/killed.h5"
kill -9 $victim
wait $victim 2> /dev/null || true
[ -e "$dir/killed.h5.lock" ] || fail "expected the killed holder's lock file"
"$bin/simcollect" --robot franka --episodes 2 --steps 12 --image-size 32 --seed 5 --out "$dir/killed.h5" --overwrite > /dev/null 2> "$dir/taken.err" ||
  fail "the stale lock was not taken over: $(cat "$dir/taken.err")"
! grep -qi "lock\|being written" "$dir/taken.err" || fail "taking a stale lock over should be silent: $(cat "$dir/taken.err")"

# pretrain: a second pretrain --overwrite on the checkpoint being trained.
data=$dir/cc.h5
"$bin/pretrain" --data "$data" --out "$dir/enc.pt" --steps 4 --batch 4 --width 8 --dim 16 --frame-skip 2 --rollout 2 --probe-episodes 3 > /dev/null 2>&1 &
first=$!
hold_stopped $first "$dir/enc.pt"
expect_refused $first "$dir/enc.pt" "$bin/pretrain" --data "$data" --out "$dir/enc.pt" --steps 2 --batch 4 --width 8 --dim 16 --overwrite
resume $first
[ -s "$dir/enc.pt" ] && [ -s "$dir/enc.pt.eval.json" ] || fail "pretrain's checkpoint or probes missing"

# encode: two encoders of the same latent cache; the second waits for the first, both succeed. (A
# wider encoder on more frames, so that the first is caught while it encodes.)
"$bin/simcollect" --robot franka --episodes 30 --steps 40 --image-size 32 --seed 7 --out "$dir/big.h5" > /dev/null 2>&1
"$bin/pretrain" --data "$dir/big.h5" --out "$dir/wide.pt" --steps 2 --batch 4 --width 48 --dim 64 --frame-skip 2 --rollout 2 --probe-episodes 3 \
  > /dev/null 2>&1
"$bin/encode" --data "$dir/big.h5" --encoder "$dir/wide.pt" --threads 1 > /dev/null 2>&1 &
first=$!
for _ in $(seq 1 6000); do
  lock=$(ls "$dir/big.h5.latents"/*.lock 2> /dev/null | head -1 || true)
  [ -n "$lock" ] && [ -s "$lock" ] && grep -q "^pid $first " "$lock" && break
  kill -0 $first 2> /dev/null || fail "encode ended before it was caught holding its cache"
  sleep 0.01
done
kill -STOP $first
stopped+=("$first")
"$bin/encode" --data "$dir/big.h5" --encoder "$dir/wide.pt" > "$dir/second.out" 2> "$dir/second.err" &
second=$!
for _ in $(seq 1 600); do grep -q "waiting for pid $first " "$dir/second.err" && break || sleep 0.05; done
grep -q "waiting for pid $first " "$dir/second.err" || fail "the second encoder did not wait for the first: $(cat "$dir/second.err")"
kill -0 $second 2> /dev/null || fail "the second encoder did not wait"
resume $first
wait $second || fail "the second encoder failed: $(cat "$dir/second.err")"
grep -q "up to date, reused" "$dir/second.out" || fail "the second encoder did not reuse the first's cache: $(cat "$dir/second.out")"

# adapt: a second adapt --overwrite, and an --eval, on the model folder being trained.
"$bin/adapt" --embodiment franka --data "$data" --encoder "$dir/enc.pt" --out "$dir/model" --steps 4 --batch 4 --width 16 --depth 1 \
  --context 2 --frame-skip 2 --eval-seconds 0.4 > /dev/null 2>&1 &
first=$!
hold_stopped $first "$dir/model"
expect_refused $first "$dir/model" "$bin/adapt" --embodiment franka --data "$data" --encoder "$dir/enc.pt" --out "$dir/model" --steps 2 --batch 4 \
  --width 16 --depth 1 --context 2 --frame-skip 2 --overwrite
resume $first
[ -s "$dir/model/model.pt" ] && [ -s "$dir/model/metrics.json" ] || fail "adapt's model or metrics missing"

# plan: a second plan on the same results JSON.
plan=("$bin/plan" --embodiment franka --model "$dir/model" --encoder "$dir/enc.pt" --episodes 2 --max-steps 3 --no-baselines --oracle none
  --samples 16 --iterations 1 --elites 4 --replay-episodes 0 --out "$dir/plan.json")
"${plan[@]}" > /dev/null 2>&1 &
first=$!
hold_stopped $first "$dir/plan.json"
expect_refused $first "$dir/plan.json" "${plan[@]}"
resume $first
/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['episodes'] == 2, r['episodes']" "$dir/plan.json" ||
  fail "plan.json incomplete"

# surprise: a second surprise --overwrite on the clips being written.
surprise=("$bin/surprise" --embodiment franka --model "$dir/model" --encoder "$dir/enc.pt" --pairs 2 --steps 32)
"${surprise[@]}" --out "$dir/s1.json" --clips "$dir/clips.h5" > /dev/null 2>&1 &
first=$!
hold_stopped $first "$dir/clips.h5"
expect_refused $first "$dir/clips.h5" "${surprise[@]}" --out "$dir/s2.json" --clips "$dir/clips.h5" --overwrite
expect_refused $first "$dir/s1.json" "${surprise[@]}" --out "$dir/s1.json"
resume $first
[ -s "$dir/s1.json" ] && [ -s "$dir/clips.h5" ] || fail "surprise's results or clips missing"
[ ! -e "$dir/s2.json" ] || fail "the refused surprise wrote its results"
ls "$dir" | grep -q '\.lock$' && fail "lock files left: $(ls "$dir" | grep '\.lock$')"
echo "one_writer_programs_test: OK"
