#!/usr/bin/env bash
# The main job on a small default: render each robot, collect a small randomized dataset per robot,
# and show what the datasets hold. Everything lands under out/ (frames) and data/ (datasets).
set -euo pipefail
bin=${BUILD_DIR:-build}/bin
export LP_NUM_THREADS=0
"$bin/sim-demo" --out out
for robot in franka ur5 humanoid; do
  "$bin/simcollect" --robot "$robot" --episodes 40 --steps 60 --out "data/demo_$robot.h5" --overwrite
done
"$bin/simcollect" info data/demo_franka.h5
# Stage one on the small default (partial: see README): a short JEPA run, its probes, the latent cache.
"$bin/pretrain" --data data/demo_franka.h5 data/demo_ur5.h5 --out models/demo_encoder.pt --steps 150 --overwrite
"$bin/encode" --encoder models/demo_encoder.pt --data data/demo_franka.h5 data/demo_ur5.h5
echo "demo: frames in out/, datasets in data/demo_{franka,ur5,humanoid}.h5 (h5py/robomimic), encoder in models/demo_encoder.pt"
