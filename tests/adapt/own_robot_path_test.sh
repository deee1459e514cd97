#!/usr/bin/env bash
# Your own robot from collection to a plan and the viewer, as a new user runs it: a renamed copy of
# ur5's descriptor (my_ur5) given by a relative path, no --data, --out or --encoder anywhere, and
# the later programs run from another folder. Checks: simcollect writes data/my_ur5.h5 (the declared
# name); adapt finds it, reads both cameras, takes the only encoder in models/ and says so; plan
# finds the robot from the model folder (by --model alone, and by the declared name), surprise too;
# the viewer opens the first held-out episode with the evaluation's horizon; the refusals name the
# fix, and the command a refusal suggests runs as written.
# Usage: own_robot_path_test.sh BIN_DIR ASSETS_DIR
set -euo pipefail
bin=$1
assets=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LP_NUM_THREADS=0
fail() {
  echo "own_robot_path_test: FAIL: $*" >&2
  exit 1
}
json() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

mkdir -p "$dir/robots" "$dir/work/models" "$dir/elsewhere"
sed -e 's/"name": "ur5"/"name": "my_ur5"/' -e "s#\"../ur5_tabletop.xml\"#\"$assets/ur5_tabletop.xml\"#" "$assets/embodiments/ur5.json" > "$dir/robots/my_ur5.json"
cd "$dir/work"
"$bin/simcollect" --robot ../robots/my_ur5.json --episodes 12 --steps 16 --image-size 32 --cameras 2 --seed 5 > /dev/null
[ -f data/my_ur5.h5 ] || fail "simcollect did not write data/my_ur5.h5 (the name the descriptor declares)"
"$bin/pretrain" --data data/my_ur5.h5 --out models/enc.pt --steps 3 --batch 4 --width 8 --dim 16 --frame-skip 2 --rollout 2 \
  --probe-episodes 4 > /dev/null 2>&1

# A refusal's suggestion is a command that runs as written (sizes made tiny).
if "$bin/adapt" --embodiment ../robots/my_ur5.json --data data/other.h5 > /dev/null 2> err.txt; then fail "adapt on a missing dataset"; fi
suggested=$(sed -n 's/.*— run: //p' err.txt)
[ "$suggested" = "simcollect --robot ../robots/my_ur5.json --episodes 500 --out data/other.h5" ] || fail "adapt's suggestion: $(cat err.txt)"
# shellcheck disable=SC2086
"$bin/"${suggested/--episodes 500/--episodes 2 --steps 8 --image-size 32} > /dev/null || fail "the suggested command failed: $suggested"

"$bin/adapt" --embodiment ../robots/my_ur5.json --steps 4 --batch 4 --width 16 --depth 1 --context 2 --frame-skip 2 \
  --eval-seconds 0.4 > adapt.out 2> adapt.err || fail "adapt: $(tail -3 adapt.err)"
grep -q "adapt: --encoder models/enc.pt (the only encoder in models/)" adapt.err || fail "adapt does not say which encoder it took: $(cat adapt.err)"
grep -q "my_ur5, .* 2 tokens x" adapt.err || fail "adapt on a two-camera dataset does not read both cameras: $(grep tokens adapt.err)"
[ "$(json models/my_ur5/metrics.json '["robot"]')" = "$dir/robots/my_ur5.json" ] || fail "the model does not record the descriptor"
[ "$(json models/my_ur5/metrics.json '["options"]["steps"]')" = "4" ] || fail "metrics.json does not store adapt's options"

# plan by --model alone, from another folder: the robot and the encoder come from the model folder.
cd "$dir/elsewhere"
small=(--episodes 1 --max-steps 3 --no-baselines --oracle none --samples 16 --iterations 1 --elites 4 --replay-episodes 0)
"$bin/plan" --model ../work/models/my_ur5 "${small[@]}" --out plan.json > plan.out 2> plan.err || fail "plan --model: $(cat plan.err)"
[ "$(json plan.json '["embodiment"]')" = "my_ur5" ] || fail "plan planned for $(json plan.json '["embodiment"]')"
grep -q "the encoder ../work/models/my_ur5 was trained on" plan.err || fail "plan does not say which encoder it took: $(cat plan.err)"
# The options a run used are stored with what it wrote, and --config on that output runs it again
# (the command line winning over the file): the same episodes, the same distances.
[ "$(json plan.json '["options"]["samples"]')" = "16" ] || fail "plan.json does not store the options: $(json plan.json '.get("options")')"
"$bin/plan" --config plan.json --out plan2.json > /dev/null 2> plan2.err || fail "plan --config plan.json: $(cat plan2.err)"
same='[e["model"]["final_distance_cm"] for e in json.load(open(sys.argv[1]))["per_episode"]]'
[ "$(json plan2.json '["options"]["out"]')" = "plan2.json" ] || fail "plan --config: the command line's --out did not win"
[ "$(/usr/bin/python3 -c "import json,sys; print($same)" plan.json)" = "$(/usr/bin/python3 -c "import json,sys; print($same)" plan2.json)" ] ||
  fail "plan --config plan.json planned differently"
# A perturbed robot, adapted online: stored as named, with the nominal and unadapted runs beside it.
"$bin/plan" --model ../work/models/my_ur5 "${small[@]}" --perturb gains=0.5 --online-adapt --out perturbed.json > /dev/null 2> err.txt ||
  fail "plan --perturb gains=0.5 --online-adapt: $(cat err.txt)"
pert='j = json.load(open(sys.argv[1])); print(j["perturbation"]["name"], j["perturbation"]["value"], j["online_adapt"])'
[ "$(/usr/bin/python3 -c "import json,sys; $pert" perturbed.json)" = "gains 0.5 True" ] ||
  fail "plan --perturb: the results record $(json perturbed.json '["perturbation"]')"
json perturbed.json '["baselines"]["nominal"]["success_rate"] + json.load(open(sys.argv[1]))["baselines"]["frozen"]["success_rate"]' > /dev/null ||
  fail "plan --perturb --online-adapt: no nominal or unadapted runs beside it"
if "$bin/plan" --model ../work/models/my_ur5 "${small[@]}" --online-steps 3 > /dev/null 2> err.txt; then fail "plan took --online-steps without --online-adapt"; fi
grep -q -- "--online-steps tunes online adaptation: add --online-adapt" err.txt || fail "plan's --online-steps refusal: $(cat err.txt)"
if "$bin/plan" --model ../work/models/my_ur5 "${small[@]}" --perturb mass=2 > /dev/null 2> err.txt; then fail "plan took --perturb mass"; fi
grep -q "unknown perturbation 'mass'" err.txt || fail "plan's --perturb refusal: $(cat err.txt)"
# Two levels: a one-level model is refused with --hierarchy, naming the slow level it lacks; adapt
# --levels 2 trains one (<model>/slow) and plan --hierarchy plans with it from the final goal image.
if "$bin/plan" --model ../work/models/my_ur5 "${small[@]}" --hierarchy > /dev/null 2> err.txt; then fail "plan --hierarchy on one level"; fi
grep -q "needs a slow level: no ../work/models/my_ur5/slow/model.pt" err.txt || fail "plan --hierarchy's refusal: $(cat err.txt)"
if "$bin/plan" --model ../work/models/my_ur5 "${small[@]}" --slow-horizon 2 > /dev/null 2> err.txt; then fail "plan took --slow-horizon alone"; fi
grep -q -- "--slow-horizon tunes the hierarchy: add --hierarchy" err.txt || fail "plan's --slow-horizon refusal: $(cat err.txt)"
(cd ../work && "$bin/adapt" --embodiment ../robots/my_ur5.json --steps 4 --batch 4 --width 16 --depth 1 --context 2 --frame-skip 2 \
  --levels 2 --slow-frame-skip 4 --eval-seconds 0.4 --out models/two_levels > adapt2.out 2> adapt2.err) || fail "adapt --levels 2: $(tail -3 ../work/adapt2.err)"
"$bin/plan" --model ../work/models/two_levels "${small[@]}" --hierarchy --out hierarchy.json > /dev/null 2> err.txt || fail "plan --hierarchy: $(cat err.txt)"
[ "$(json hierarchy.json '["hierarchy"]["slow_frame_skip"]')" = "4" ] && [ "$(json hierarchy.json '["goal_images"]')" = "final" ] ||
  fail "plan --hierarchy's results: $(json hierarchy.json '.get("hierarchy")')"
[ "$(json hierarchy.json '["baselines"]["flat"]["success_rate"] is not None')" = "True" ] || fail "plan --hierarchy: no flat planner beside it"
"$bin/plan" --config hierarchy.json --out hierarchy2.json > /dev/null 2> err.txt || fail "plan --config on a hierarchical run: $(cat err.txt)"
[ "$(/usr/bin/python3 -c "import json,sys; print($same)" hierarchy.json)" = "$(/usr/bin/python3 -c "import json,sys; print($same)" hierarchy2.json)" ] ||
  fail "plan --config hierarchy.json planned differently"
echo '{"samplez": 3}' > bad.json
if "$bin/plan" --config bad.json > /dev/null 2> err.txt; then fail "plan took an unknown --config key"; fi
grep -q 'unknown option "samplez"' err.txt || fail "plan's --config refusal: $(cat err.txt)"
# By the declared name, where models/my_ur5 is; surprise the same way.
cd "$dir/work"
"$bin/plan" --embodiment my_ur5 "${small[@]}" > /dev/null 2>&1 || fail "plan --embodiment my_ur5"
[ -f out/plan_my_ur5_reach.json ] || fail "plan --embodiment my_ur5 wrote no out/plan_my_ur5_reach.json"
"$bin/surprise" --embodiment my_ur5 --pairs 2 --steps 30 > /dev/null 2>&1 || fail "surprise --embodiment my_ur5"
[ "$(json out/surprise_my_ur5.json '["embodiment"]')" = "my_ur5" ] || fail "surprise's embodiment"
# Refusals: a name nobody recorded, a descriptor that is not there.
if "$bin/plan" --embodiment my_ur6 "${small[@]}" > /dev/null 2> err.txt; then fail "plan --embodiment my_ur6 ran"; fi
grep -q 'unknown robot "my_ur6": .*pass yours: --embodiment path/to/my_ur6.json' err.txt || fail "plan's refusal: $(cat err.txt)"
if "$bin/adapt" --embodiment ../robots/none.json > /dev/null 2> err.txt; then fail "adapt with a missing descriptor ran"; fi
grep -q "cannot open embodiment descriptor ../robots/none.json" err.txt || fail "adapt's refusal: $(cat err.txt)"
# Two encoders in models/ and none named encoder.pt: a new adapt names both instead of guessing.
cp models/enc.pt models/enc2.pt
if "$bin/adapt" --embodiment ../robots/my_ur5.json --out models/again > /dev/null 2> err.txt; then fail "adapt guessed an encoder"; fi
grep -q "models/ holds 2 encoders (models/enc.pt, models/enc2.pt): pass --encoder PATH" err.txt || fail "adapt's encoder refusal: $(cat err.txt)"

# The viewer, from another folder: the first held-out episode, the evaluation's horizon (0.4 s: 2
# model steps of 2 frames), the model's own encoder.
if command -v xvfb-run > /dev/null && [ -x "$bin/rollout-viewer" ]; then
  cd "$dir/elsewhere"
  xvfb-run -a -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --data ../work/data/my_ur5.h5 --model ../work/models/my_ur5 \
    --width 800 --height 600 --screenshot shot.png > /dev/null 2> viewer.err || fail "viewer: $(cat viewer.err)"
  [ "$(json shot.png.json '["episode"]')" = "demo_9" ] && [ "$(json shot.png.json '["held_out"]')" = "True" ] || fail "viewer episode"
  h=$(json ../work/models/my_ur5/metrics.json '["horizon"] * json.load(open(sys.argv[1]))["frame_skip"]')
  [ "$(json shot.png.json '["horizon_frames"]')" = "$h" ] || fail "viewer horizon $(json shot.png.json '["horizon_frames"]'), evaluation's $h"
fi
echo "own_robot_path_test: ok"
