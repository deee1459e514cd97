#!/usr/bin/env bash
# The whole pipeline on a small default (about 10 minutes on 2 cores): render each robot, collect
# randomized action-labeled episodes, pretrain the video encoder (stage one), adapt it to franka and
# then to ur5 starting from franka (stage two), print the evaluation tables and export a side-by-side
# view of a held-out episode. Frames and the view land in out/, datasets in data/, models in models/.
set -euo pipefail
bin=${BUILD_DIR:-build}/bin
export LP_NUM_THREADS=0
"$bin/sim-demo" --out out
for robot in franka ur5; do
  "$bin/simcollect" --robot "$robot" --episodes 120 --steps 60 --out "data/demo_$robot.h5" --overwrite
done
"$bin/simcollect" --robot humanoid --episodes 20 --steps 60 --out data/demo_humanoid.h5 --overwrite
"$bin/simcollect" info data/demo_franka.h5
# Stage one: a short JEPA run on video alone, with its linear probes against a random encoder.
"$bin/pretrain" --data data/demo_franka.h5 data/demo_ur5.h5 --out models/demo_encoder.pt --steps 300 --overwrite \
  --probe-episodes 100
# Stage two: franka from scratch, then ur5 starting from franka's trunk (transfer).
"$bin/adapt" --embodiment franka --data data/demo_franka.h5 --encoder models/demo_encoder.pt --out models/demo_franka \
  --steps 300 --overwrite
"$bin/adapt" --embodiment ur5 --data data/demo_ur5.h5 --encoder models/demo_encoder.pt --out models/demo_ur5 \
  --init models/demo_franka --steps 200 --overwrite
# The viewer, exported without a screen: true vs imagined rollout of held-out episode demo_9.
"$bin/rollout-viewer" --data data/demo_ur5.h5 --model models/demo_ur5 --encoder models/demo_encoder.pt --episode 9 \
  --screenshot out/rollout_ur5.png
echo "demo: datasets in data/demo_*.h5 (h5py/robomimic), encoder models/demo_encoder.pt (+ .eval.json)," \
     "stage-two models, metrics.json and plots in models/demo_{franka,ur5}/, viewer export out/rollout_ur5.png"
