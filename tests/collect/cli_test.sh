#!/usr/bin/env bash
# Tests that simcollect's bad inputs each give one clear message, a non-zero exit, and no output file,
# and that a dataset reads with h5py the way robomimic users read it (next_obs included), also after
# shards + merge and after an interrupted run is finished with --resume.
set -u
bin="$1"; here="$(cd "$(dirname "$0")" && pwd)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export LP_NUM_THREADS=0
fail=0
expect_error() {  # expect_error "message fragment" args...
  local want="$1"; shift
  if "$bin" "$@" >out.txt 2>err.txt; then echo "FAIL: simcollect $* succeeded"; fail=1; return; fi
  if ! grep -q -- "$want" err.txt; then echo "FAIL: simcollect $*: stderr lacks '$want':"; cat err.txt; fail=1; fi
  if [ "$(wc -l < err.txt)" -gt 2 ]; then echo "FAIL: simcollect $*: more than one message:"; cat err.txt; fail=1; fi
}
expect_error "known robots: franka, humanoid, ur5" --robot r2d2 --episodes 1
expect_error "--episodes must be positive" --episodes 0
expect_error "--image-size must be in 16..256" --image-size 300 --episodes 1
expect_error "cannot write to" --episodes 1 --out /proc/embody/x.h5
expect_error "not one the humanoid embodiment can do" --robot humanoid --task pick --episodes 1
expect_error "no such file" info missing.h5
expect_error "humanoid has no camera on its hand" --robot humanoid --eye-in-hand --episodes 1
[ -e data ] && { echo "FAIL: a failed run left data/ behind"; fail=1; }

# A real dataset, read by h5py.
"$bin" --robot franka --episodes 10 --steps 6 --image-size 32 --cameras 2 --seed 3 --out ds.h5 > /dev/null 2>&1 || { echo "FAIL: collect"; fail=1; }
/usr/bin/python3 "$here/check_layout.py" ds.h5 10 6 32 2 || fail=1
"$bin" --robot franka --episodes 10 --steps 6 --image-size 32 --cameras 2 --eye-in-hand --seed 3 --out eye10.h5 > /dev/null 2>&1 || { echo "FAIL: collect --eye-in-hand"; fail=1; }
/usr/bin/python3 "$here/check_layout.py" eye10.h5 10 6 32 2 1 || fail=1
# The layout (next_obs included) survives shards + merge and an interrupted run finished by --resume.
for i in 0 1; do
  "$bin" --robot franka --episodes 10 --steps 6 --image-size 32 --cameras 2 --seed 3 --shard $i/2 --out shard$i.h5 > /dev/null 2>&1 \
    || { echo "FAIL: shard $i"; fail=1; }
done
"$bin" merge merged.h5 shard0.h5 shard1.h5 > /dev/null || { echo "FAIL: merge"; fail=1; }
(cd / && /usr/bin/python3 "$here/check_layout.py" "$tmp/merged.h5" 10 6 32 2) || { echo "FAIL: merged layout (read from another folder)"; fail=1; }
"$bin" --robot franka --episodes 10 --steps 6 --image-size 32 --cameras 2 --seed 3 --out resumed.h5 > /dev/null 2>&1
rm resumed.h5 resumed.h5.parts/episode_000000[2579].h5
"$bin" --robot franka --episodes 10 --steps 6 --image-size 32 --cameras 2 --seed 3 --out resumed.h5 --resume > /dev/null 2>&1 \
  || { echo "FAIL: resume"; fail=1; }
/usr/bin/python3 "$here/check_layout.py" resumed.h5 10 6 32 2 || { echo "FAIL: resumed layout"; fail=1; }
# The hand camera, under robomimic's name, beside an agent view.
"$bin" --robot ur5 --episodes 2 --steps 6 --image-size 32 --eye-in-hand --seed 3 --out eye.h5 > /dev/null 2>&1 || { echo "FAIL: --eye-in-hand"; fail=1; }
/usr/bin/python3 - eye.h5 <<'PY' || { echo "FAIL: eye-in-hand layout"; fail=1; }
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    obs = f["data/demo_0/obs"]
    assert obs["robot0_eye_in_hand_image"].shape == (6, 32, 32, 3) and obs["camera0_image"].shape == (6, 32, 32, 3)
    assert f["data/demo_0/camera/robot0_eye_in_hand/extrinsics"].shape == (6, 4, 4)
PY
"$bin" info ds.h5 > info.txt || { echo "FAIL: info"; fail=1; }
grep -q "episodes:    10 (train 9, valid 1)" info.txt || { echo "FAIL: info output"; cat info.txt; fail=1; }
grep -q "^held out:    demo_9$" info.txt || { echo "FAIL: info does not list the held-out episode"; cat info.txt; fail=1; }
grep -q "dynamics.mass_scale" info.txt || { echo "FAIL: info lacks randomization ranges"; fail=1; }
# --config: every option from JSON, flags win.
echo '{"robot": "ur5", "episodes": 2, "steps": 4, "image_size": 16, "out": "cfg.h5", "randomize": "wide"}' > cfg.json
"$bin" --config cfg.json --seed 9 > /dev/null 2>&1 || { echo "FAIL: --config"; fail=1; }
"$bin" info cfg.h5 | grep -q '"robot":"ur5"' || { echo "FAIL: --config robot"; fail=1; }
"$bin" info cfg.h5 | grep -q '"seed":9' || { echo "FAIL: --config flag override"; fail=1; }
echo '{"episdoes": 2}' > bad.json
expect_error "unknown option \"episdoes\"" --config bad.json
[ $fail -eq 0 ] && echo "cli tests passed"
exit $fail
