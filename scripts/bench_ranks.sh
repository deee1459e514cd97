#!/usr/bin/env bash
# Data-parallel throughput on this machine: pretrain and adapt as 1 process (all cores) and as 2 ranks
# (torchrun's variables, cores split between them), the same global batch and steps, on a small dataset
# collected here. Prints samples/s, the ratio 2 ranks / 1 process, the all-reduce size per step and the
# measured step time (what the README's scaling estimate uses).
#   scripts/bench_ranks.sh [BUILD_DIR] [STEPS]
set -euo pipefail
build=${1:-build}
steps=${2:-60}
bin=$(cd "$build/bin" && pwd)
tmp=$(mktemp -d /tmp/embody_bench_ranks.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$bin/simcollect" --robot franka --episodes 40 --steps 60 --seed 3 --out d.h5 > /dev/null 2>&1
port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
two() {  # log, command...
  local log=$1 p
  shift
  p=$(port)
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$p WORLD_SIZE=2 RANK=1 "$@" > /dev/null 2>&1 &
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$p WORLD_SIZE=2 RANK=0 "$@" > "$log" 2>&1
  wait
}
common=(--data d.h5 --steps "$steps" --batch 32 --probe-episodes 8 --seed 1)
"$bin/pretrain" "${common[@]}" --out one.pt > pre1.log 2>&1
two pre2.log "$bin/pretrain" "${common[@]}" --out two.pt
p1=$(grep -o '[0-9.]* clips/s ->' pre1.log | awk '{print $1}'); p2=$(grep -o '[0-9.]* clips/s ->' pre2.log | awk '{print $1}')
params=$(/usr/bin/python3 -c 'import torch; m = torch.jit.load("one.pt"); print(sum(p.numel() for s in ("target", "predictor") for p in getattr(m, s).parameters()))')
ad=(--embodiment franka --data d.h5 --encoder one.pt --steps "$steps" --batch 32 --eval-every 1000000 --seed 1 --eval-episodes 4 --readout-episodes 8)
"$bin/adapt" "${ad[@]}" --out m1 > ad1.log 2>&1
two ad2.log "$bin/adapt" "${ad[@]}" --out m2
a1=$(grep -o '[0-9.]* samples/s' ad1.log | tail -n 1 | awk '{print $1}'); a2=$(grep -o '[0-9.]* samples/s' ad2.log | tail -n 1 | awk '{print $1}')
aparams=$(/usr/bin/python3 -c 'import torch; m = torch.jit.load("m1/model.pt"); print(sum(p.numel() for p in m.parameters()))')
/usr/bin/python3 - "$p1" "$p2" "$params" "$a1" "$a2" "$aparams" <<'PY'
import sys
p1, p2, pp, a1, a2, ap = map(float, sys.argv[1:])
print(f"data-parallel bench ({int(pp)} pretrain parameters, {int(ap)} world-model parameters; global batch 32):")
for name, one, two, n in (("pretrain (clips/s)", p1, p2, pp), ("adapt (windows/s)", a1, a2, ap)):
    print(f"  {name:20s} 1 process {one:7.1f}   2 ranks {two:7.1f}   ratio {two / one:.2f}   "
          f"all-reduce {n * 4 / 1e6:.1f} MB/step, step {32 / one * 1000:.0f} ms (1 process)")
PY
