#!/usr/bin/env bash
# scripts/latent_predictability.py on a tiny real pipeline (simcollect -> pretrain -> encode): every
# model trains and reports a finite held-out ratio, a fixed number of steps is deterministic, and
# asking for more episodes than the data holds is refused with a message.
# Usage: latent_predictability_test.sh BIN_DIR SCRIPT
set -euo pipefail
bin=$1
script=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "latent_predictability_test: FAIL: $*" >&2; exit 1; }
"$bin/simcollect" --robot franka --episodes 12 --steps 12 --image-size 32 --seed 3 --out "$dir/f.h5" > /dev/null
"$bin/pretrain" --recipe jepa --data "$dir/f.h5" --out "$dir/enc.pt" --steps 2 --batch 4 --width 8 --dim 16 --probe-episodes 4 > /dev/null 2>&1
"$bin/encode" --encoder "$dir/enc.pt" --data "$dir/f.h5" > /dev/null 2>&1
cache=$(ls "$dir"/f.h5.latents/*.h5)
run() { /usr/bin/python3 "$script" --cache "$cache" --data "$dir/f.h5" --episodes 12 --threads 1 "$@"; }
for model in tokenmlp conv transformer; do
  out=$(run --model "$model" --steps 5 --batch 4) || fail "$model: $out"
  ratio=$(tail -n 1 <<< "$out" | sed -n 's/.*held-out ratio to copy-last \([0-9.]*\)$/\1/p')
  [ -n "$ratio" ] || fail "$model: no held-out ratio in: $out"
  /usr/bin/python3 -c "import math,sys; r=float(sys.argv[1]); sys.exit(0 if math.isfinite(r) and 0 < r < 10 else 1)" "$ratio" \
    || fail "$model: ratio $ratio"
done
a=$(run --model tokenmlp --oracle --steps 5 --batch 4 | tail -n 1 | sed 's/ in [0-9]* s//')
b=$(run --model tokenmlp --oracle --steps 5 --batch 4 | tail -n 1 | sed 's/ in [0-9]* s//')
[ "$a" = "$b" ] || fail "not deterministic: '$a' vs '$b'"
if out=$(run --episodes 13 2>&1); then fail "13 of 12 episodes accepted"; fi
grep -qF "lower --episodes" <<< "$out" || fail "unclear refusal: $out"
echo "latent_predictability_test: ok"
