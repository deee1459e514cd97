#!/usr/bin/env bash
# Data-parallel training launched as torchrun launches it (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
# 2 real processes over c10d Gloo end with the same parameters as one process with the same (global)
# batch, for pretrain (encoder with a batch norm, SIGReg over the batch) and adapt (the world model),
# also across --resume. Compared in float64 (--precision), where rounding cannot masquerade as a
# difference (in float32, Adam turns rounding noise in near-zero gradients into whole steps).
# usage: data_parallel_test.sh BIN_DIR
set -uo pipefail
bin=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/embody_ddp_test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Runs "$@" as 2 ranks; exit 0 when both do. Logs: NAME.rank0.log, NAME.rank1.log.
two_ranks() {
  local name=$1 p
  shift
  p=$(port)
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$p WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 "$@" > "$name.rank0.log" 2>&1 &
  local r0=$!
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$p WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 "$@" > "$name.rank1.log" 2>&1
  local s1=$?
  wait $r0
  local s0=$?
  [ $s0 -eq 0 ] && [ $s1 -eq 0 ]
}
compare() { /usr/bin/python3 "$here/compare_checkpoints.py" "$@"; }

"$bin/simcollect" --robot franka --episodes 12 --steps 24 --image-size 32 --seed 5 --out d.h5 > /dev/null 2>&1 || { echo "FAIL: simcollect"; exit 1; }

pre=(--data d.h5 --steps 3 --batch 4 --probe-episodes 4 --seed 1 --threads 1 --precision float64)
"$bin/pretrain" "${pre[@]}" --out one.pt > one.log 2>&1 || { echo "FAIL: pretrain, one process"; tail one.log; exit 1; }
check "pretrain as 2 ranks" "two_ranks pre '$bin/pretrain' ${pre[*]} --out two.pt"
check "only rank 0 reports" "grep -q '2 data-parallel ranks (torchrun), global batch 4, 2 per rank' pre.rank0.log && ! grep -q 'pretrain: step' pre.rank1.log"
check "pretrain: 2 ranks = one process (encoder incl. batch-norm statistics, predictor) to 1e-5" "compare one.pt two.pt 1e-5 target predictor"
"$bin/pretrain" --data d.h5 --steps 3 --batch 4 --probe-episodes 4 --seed 2 --threads 1 --precision float64 --out seed2.pt > /dev/null 2>&1
check "the comparison tells another seed apart" "! compare one.pt seed2.pt 1e-5 target predictor > /dev/null"

ad=(--embodiment franka --data d.h5 --encoder one.pt --batch 4 --eval-every 2 --threads 1 --precision float64 --seed 2
    --eval-seconds 0.4 --eval-episodes 2 --readout-episodes 4)
"$bin/adapt" "${ad[@]}" --steps 4 --out m1 > m1.log 2>&1 || { echo "FAIL: adapt, one process"; tail m1.log; exit 1; }
check "adapt as 2 ranks" "two_ranks ad '$bin/adapt' ${ad[*]} --steps 4 --out m2"
check "adapt: rank 0 alone writes metrics" "[ -f m2/metrics.json ] && grep -q 'data-parallel ranks' ad.rank0.log && ! grep -q 'metrics and plots' ad.rank1.log"
check "adapt: 2 ranks = one process (world model) to 1e-5" "compare m1/model.pt m2/model.pt 1e-5"

# --resume with the same world size continues exactly as one process does.
"$bin/adapt" "${ad[@]}" --steps 2 --out r1 > /dev/null 2>&1 && "$bin/adapt" "${ad[@]}" --steps 4 --resume --out r1 > r1.log 2>&1
check "adapt --resume as 2 ranks" "two_ranks rs '$bin/adapt' ${ad[*]} --steps 2 --out r2 && two_ranks rs2 '$bin/adapt' ${ad[*]} --steps 4 --resume --out r2"
check "adapt --resume: 2 ranks = one process to 1e-5" "compare r1/train_state.pt r2/train_state.pt 1e-5"

# Refusals: one clear message, non-zero exit, on every rank.
check "a batch the ranks cannot split is refused" \
  "! two_ranks odd '$bin/pretrain' --data d.h5 --steps 2 --batch 3 --probe-episodes 4 --out odd.pt && grep -q 'multiple of the 2 ranks' odd.rank0.log && grep -q 'multiple of the 2 ranks' odd.rank1.log && [ ! -e odd.pt ]"
check "RANK without WORLD_SIZE is refused" "! RANK=0 '$bin/adapt' ${ad[*]} --steps 4 --out bad 2> bad.err && grep -q 'RANK and WORLD_SIZE must be set together' bad.err"
check "the jepa recipe is refused on ranks" \
  "! two_ranks jepa '$bin/pretrain' --data d.h5 --recipe jepa --steps 2 --out jepa.pt && grep -q 'trains in one process' jepa.rank0.log"
# --device: cpu and auto train here as before; cuda either trains on a GPU or says why it cannot.
"$bin/pretrain" "${pre[@]}" --device cpu --out cpu.pt > /dev/null 2>&1
check "--device cpu gives the default run" "compare one.pt cpu.pt 0 target predictor > /dev/null"
if "$bin/pretrain" --data d.h5 --steps 1 --batch 4 --probe-episodes 4 --device cuda --out cuda.pt > cuda.log 2>&1; then
  check "--device cuda trained on the GPU" "grep -q 'training on cuda' cuda.log"
else
  check "--device cuda without CUDA says why" "grep -q 'sees no CUDA device' cuda.log && [ ! -e cuda.pt ]"
fi
[ $fail -eq 0 ] && echo "PASS"
exit $fail
