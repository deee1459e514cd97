#!/usr/bin/env bash
# The rollout viewer in a real GLFW window under Xvfb: a tiny dataset, encoder and model; a
# screenshot (size, both panels non-uniform, the true panel's recorded frame equals the stored
# frame), a surprise clip's curve with its violation marked, an orbit view framing every robot, a
# video (ffprobe frame count), a planning replay, and the refusals (no display, not a dataset, wrong robot).
# Usage: viewer_test.sh BIN_DIR
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LP_NUM_THREADS=0
"$bin/simcollect" --robot franka --episodes 12 --steps 16 --image-size 32 --seed 5 --out "$dir/franka.h5" > /dev/null
"$bin/simcollect" --robot ur5 --episodes 2 --steps 8 --image-size 32 --seed 5 --out "$dir/ur5.h5" > /dev/null
"$bin/pretrain" --data "$dir/franka.h5" --out "$dir/enc.pt" --steps 3 --batch 4 --width 8 --dim 16 --frame-skip 2 --rollout 2 --probe-episodes 4 > /dev/null 2>&1
"$bin/adapt" --embodiment franka --data "$dir/franka.h5" --encoder "$dir/enc.pt" --out "$dir/model" --steps 6 --batch 4 \
  --width 16 --depth 1 --context 2 --frame-skip 2 --eval-seconds 0.4 --train-decoder --decoder-steps 5 > /dev/null 2>&1
[ -f "$dir/model/decoder.pt" ] || { echo "viewer_test: FAIL: no decoder.pt" >&2; exit 1; }

fail() { echo "viewer_test: FAIL: $*" >&2; exit 1; }

# Screenshot under Xvfb, in a real window.
xvfb-run -a -f "$dir/Xauthority" -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --data "$dir/franka.h5" --model "$dir/model" --encoder "$dir/enc.pt" \
  --episode 9 --frame 5 --context 3 --horizon 4 --width 960 --height 600 --screenshot "$dir/shot.png"
/usr/bin/python3 "$here/check_screenshot.py" "$dir/shot.png" "$dir/franka.h5" 960 600 || fail "screenshot check"
# Without --episode the viewer opens on the first held-out episode (demo_9 of 12), and says it is held out.
xvfb-run -a -f "$dir/Xauthority" -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --data "$dir/franka.h5" --model "$dir/model" --encoder "$dir/enc.pt" \
  --width 960 --height 600 --screenshot "$dir/default.png" > /dev/null
/usr/bin/python3 -c "import json,sys; l=json.load(open(sys.argv[1])); assert l['episode'] == 'demo_9' and l['held_out'] is True, l['episode']" \
  "$dir/default.png.json" || fail "the default episode is not the first held-out one"

# Two models compared: two imagined frames (non-uniform), one latent-error plot with both models'
# curves and copy-last's, and the episode list with both models' figures, sorted by the second's.
"$bin/adapt" --embodiment franka --data "$dir/franka.h5" --encoder "$dir/enc.pt" --out "$dir/model2" --steps 3 --batch 4 \
  --width 16 --depth 1 --context 2 --frame-skip 2 --eval-seconds 0.4 > /dev/null 2>&1
xvfb-run -a -f "$dir/Xauthority" -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --data "$dir/franka.h5" --model "$dir/model" --model "$dir/model2" \
  --encoder "$dir/enc.pt" --episode 9 --frame 5 --context 3 --horizon 4 --width 960 --height 600 --sort-episodes 2 \
  --screenshot "$dir/two.png" > /dev/null
/usr/bin/python3 - "$dir/two.png" <<'PY' || fail "two models: not two imagined frames and one overlaid plot"
import json, sys
import numpy as np
from PIL import Image
img = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
l = json.load(open(sys.argv[1] + ".json"))
assert len(l["models"]) == 2 and len(l["imagined_frames"]) == 2, l
for x, y, w, h in l["imagined_frames"]:
    assert w > 16 and len(np.unique(img[y:y + h, x:x + w].reshape(-1, 3), axis=0)) > 20, ("uniform imagined frame", x, y, w, h)
assert l["latent_series"] == ["copy-last", "model", "model2"], l["latent_series"]
# Per-episode figures: every episode has both models' error; the list is sorted by model 2's, worst first.
figures, order = l["episode_figures"], l["episode_order"]
assert len(figures) == 12 and all(len(v) == 2 and None not in v for v in figures.values()), figures
worst = [figures[d][1] for d in order]
assert sorted(order) == sorted(figures) and all(a >= b for a, b in zip(worst, worst[1:])), (order, worst)
# The last-drawn curve is on top wherever curves overlap (these tiny models barely leave copy-last).
x, y, w, h = l["latent_plot"]
box = img[y:y + h, x:x + w * 55 // 100]  # the curves, left of the legend
assert (np.abs(box - np.array((230, 110, 200))).max(axis=-1) <= 30).sum() >= 10, "the second model's curve is missing"
PY

# A dataset of surprise clips: the surprise curve under the clip, the violation frame marked.
"$bin/surprise" --embodiment franka --model "$dir/model" --encoder "$dir/enc.pt" --pairs 2 --steps 32 --out "$dir/surprise.json" \
  --clips "$dir/clips.h5" > /dev/null
xvfb-run -a -f "$dir/Xauthority" -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --data "$dir/clips.h5" --episode 1 --frame 20 --width 960 --height 600 \
  --screenshot "$dir/surprise.png" > /dev/null
/usr/bin/python3 "$here/check_surprise_screenshot.py" "$dir/surprise.png" "$dir/clips.h5" || fail "surprise screenshot check"

# A planning replay (plan writes <stem>_replay.h5 and the video): goal, executed frame (equal to the
# recorded one), the decoded imagined plan, energy and distance plots sharing the step axis.
"$bin/plan" --embodiment franka --model "$dir/model" --encoder "$dir/enc.pt" --episodes 2 --max-steps 3 --no-baselines --oracle none \
  --samples 16 --iterations 1 --elites 4 --out "$dir/plan.json" --video "$dir/plan.mp4" > /dev/null
xvfb-run -a -f "$dir/Xauthority" -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --plan "$dir/plan.json" --episode 1 --frame 1 --width 960 --height 600 \
  --screenshot "$dir/plan.png" > /dev/null
/usr/bin/python3 - "$dir/plan.png" "$dir/plan_replay.h5" "$dir/plan.mp4" <<'PY' || fail "planning replay"
import json, subprocess, sys
import h5py
import numpy as np
from PIL import Image
img = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
l = json.load(open(sys.argv[1] + ".json"))
f = h5py.File(sys.argv[2], "r")
ep = f["episode_1"]
assert l["episode"] == 1 and l["step"] == 1 and l["steps"] == ep.attrs["steps"] and l["decoded"], l
s = f.attrs["image_size"]
x, y, w, h = l["executed_frame"]
frame = ep["frames"][1]
# Sample the centre of every recorded pixel: the executed panel shows frame 1 exactly (nearest filtering).
ys = (y + (np.arange(s) + 0.5) * h / s).astype(int)
xs = (x + (np.arange(s) + 0.5) * w / s).astype(int)
assert np.abs(img[np.ix_(ys, xs)] - frame.astype(int)).max() <= 3, "executed panel != recorded frame 1"
gx, gy, gw, gh = l["goal_image"]
assert np.abs(img[np.ix_((gy + (np.arange(s) + 0.5) * gh / s).astype(int), (gx + (np.arange(s) + 0.5) * gw / s).astype(int))] - ep["goal"][()].astype(int)).max() <= 3
assert len(l["imagined_frames"]) == f.attrs["horizon"], l["imagined_frames"]
for x, y, w, h in l["imagined_frames"]:
    assert len(np.unique(img[y:y + h, x:x + w].reshape(-1, 3), axis=0)) > 20, "uniform imagined frame"
assert l["energy_plot"][4] == l["distance_plot"][4] > l["energy_plot"][0], (l["energy_plot"], l["distance_plot"])
total = sum(int(f[k].attrs["steps"]) + 1 for k in f)
n = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames",
                    "-of", "csv=p=0", sys.argv[3]], capture_output=True, text=True).stdout.strip()
assert int(n) == total, (n, total)
PY

# The orbit view frames the whole robot and the scene's objects, for the humanoid as for the arms:
# their bounding box, projected through the view's camera, lies inside the view.
"$bin/simcollect" --robot humanoid --episodes 2 --steps 8 --image-size 32 --seed 5 --out "$dir/humanoid.h5" > /dev/null
for data in humanoid franka; do
  xvfb-run -a -f "$dir/Xauthority" -s "-screen 0 1024x768x24" "$bin/rollout-viewer" --data "$dir/$data.h5" --episode 1 --frame 5 --width 960 --height 600 \
    --screenshot "$dir/framed_$data.png" > /dev/null
  /usr/bin/python3 - "$dir/framed_$data.png.json" <<'PY' || fail "$data: the orbit view does not frame the robot"
import json, sys
l = json.load(open(sys.argv[1]))
x0, y0, x1, y1 = l["robot_box"]
x, y, w, h = l["true_view"]
assert x0 >= x and y0 >= y and x1 <= x + w and y1 <= y + h, (l["robot_box"], l["true_view"])
assert (x1 - x0) * (y1 - y0) >= 0.15 * w * h, ("the robot is tiny in the view", l["robot_box"], l["true_view"])
PY
done

# Without a display, a screenshot still works (the viewer runs itself under xvfb-run).
env -u DISPLAY -u WAYLAND_DISPLAY "$bin/rollout-viewer" --data "$dir/franka.h5" --episode 1 --frame 2 --width 640 --height 480 \
  --screenshot "$dir/nodisplay.png" > /dev/null
/usr/bin/python3 -c "import sys; d=open(sys.argv[1],'rb').read(24); import struct; w,h=struct.unpack('>II', d[16:24]); assert (w,h)==(640,480), (w,h)" "$dir/nodisplay.png" \
  || fail "screenshot without a display"

# Video: one frame per step of the episode.
xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --data "$dir/franka.h5" --model "$dir/model" --encoder "$dir/enc.pt" --episode 2 --context 3 \
  --horizon 4 --width 640 --height 480 --video "$dir/out.mp4" > /dev/null
frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$dir/out.mp4")
[ "$frames" = 16 ] || fail "video has $frames frames, expected 16"

# The interactive path: a visible window that plays for 40 frames (model on its worker thread), then closes.
xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --data "$dir/franka.h5" --model "$dir/model" --encoder "$dir/enc.pt" --episode 3 --context 3 \
  --horizon 4 --play --speed 60 --exit-after 40 2> "$dir/interactive.log" || fail "interactive run: $(cat "$dir/interactive.log")"

# Refusals: one clear message, non-zero exit.
expect_error() {  # expect_error "substring" command...
  local want=$1; shift
  if out=$("$@" 2>&1); then fail "expected failure: $*"; fi
  grep -qF -- "$want" <<< "$out" || fail "expected \"$want\" in: $out"
}
expect_error "no display available" env -u DISPLAY -u WAYLAND_DISPLAY "$bin/rollout-viewer" --data "$dir/franka.h5"
echo "not hdf5" > "$dir/junk.h5"
expect_error "junk.h5" xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --data "$dir/junk.h5" --screenshot "$dir/x.png"
expect_error "holds ur5 episodes" xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --data "$dir/ur5.h5" --model "$dir/model" --encoder "$dir/enc.pt" \
  --screenshot "$dir/x.png"
expect_error "cannot read $dir/none.json" xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --plan "$dir/none.json" --screenshot "$dir/x.png"
head -c 3000 "$dir/plan_replay.h5" > "$dir/cut_replay.h5"
expect_error "cut_replay.h5" xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --plan "$dir/cut_replay.h5" --screenshot "$dir/x.png"
expect_error "give --data DATASET" xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --data "$dir/franka.h5" --plan "$dir/plan.json" --screenshot "$dir/x.png"
expect_error "out of range" xvfb-run -a -f "$dir/Xauthority" "$bin/rollout-viewer" --data "$dir/franka.h5" --episode 99 --screenshot "$dir/x.png"
[ ! -e "$dir/x.png" ] || fail "a refused run wrote output"
echo "viewer_test: ok"
