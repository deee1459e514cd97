#!/usr/bin/env bash
# The whole pipeline on a small default (about 25 minutes on 2 cores): render each robot, collect
# action-labeled episodes at the world model's randomization level (light) from two cameras, pretrain
# the video encoder on both views (stage one, LeWM's recipe), adapt world models that read both views
# to franka (two levels: 0.2 s and 1 s model steps) and then to ur5 starting from franka with 50
# episodes (stage two), print the evaluation tables and export a side-by-side view of a held-out
# episode, plan toward goal images with the franka model (10 reach episodes against baselines; 10
# pushes from the final goal image on two timescales, the flat planner beside it), and test it for
# surprise at impossible events (40 matched clip pairs).
# Frames, the view and the planning results land in out/, datasets in data/, models in models/.
set -euo pipefail
bin=${BUILD_DIR:-build}/bin
export LP_NUM_THREADS=0
start=$(date +%s)
"$bin/sim-demo" --out out
# Two cameras (simcollect's default): camera0 framed from the front right, camera1 from the robot's
# right and lower, so that what moves along one camera's line of sight moves across the other's image.
"$bin/simcollect" --robot franka --episodes 300 --steps 60 --out data/demo_franka.h5 --overwrite
"$bin/simcollect" --robot ur5 --episodes 100 --steps 60 --out data/demo_ur5.h5 --overwrite
"$bin/simcollect" --robot humanoid --episodes 20 --steps 60 --out data/demo_humanoid.h5 --overwrite
"$bin/simcollect" info data/demo_franka.h5
# Stage one: encoder + action-conditioned next-embedding predictor with SIGReg, on both arms' video
# from both cameras (each clip from one of them).
# (Clips come from every view the datasets have, camera0 and camera1: the programs' default.)
"$bin/pretrain" --data data/demo_franka.h5 data/demo_ur5.h5 --out models/demo_encoder.pt --steps ${DEMO_PRETRAIN_STEPS:-1250} \
  --overwrite --probe-episodes 300 | tee out/demo_pretrain.txt
# Stage two: franka from scratch (with the viewer's decoder), then ur5 from franka's trunk on 50 episodes
# in 2000 steps (3000 by default: within the demo's budget); both read camera0 and camera1 (each frame's
# latents: both views' vectors), ur5 as franka does.
# (The model reads every view of the dataset, camera0 and camera1: adapt's default.)
# franka with two levels: the model (4 control steps per model step) and a slow one (20: 1 s) in
# models/demo_franka/slow, for planning on two timescales.
"$bin/adapt" --embodiment franka --data data/demo_franka.h5 --encoder models/demo_encoder.pt --out models/demo_franka \
  --overwrite --train-decoder --levels 2 | tee out/demo_franka.txt
"$bin/adapt" --embodiment ur5 --data data/demo_ur5.h5 --encoder models/demo_encoder.pt --out models/demo_ur5 \
  --init models/demo_franka --episodes 50 --steps 2000 --overwrite --train-decoder | tee out/demo_ur5.txt
# The franka model as TorchScript for Python users (torch.jit.load), checked against the C++ model.
"$bin/adapt" --embodiment franka --out models/demo_franka --export
# The viewer, exported without a screen: true vs imagined rollout of held-out franka episode demo_9
# (its default: the first held-out episode, 2 s imagined as the evaluation did, the model's encoder).
"$bin/rollout-viewer" --data data/demo_franka.h5 --model models/demo_franka --start 8 --frame 24 --screenshot out/rollout_franka.png
# Planning: reach a goal image by CEM in the franka model's latent space, closed loop in MuJoCo, with
# the random, still and oracle planners on the same 10 held-out scenes.
"$bin/plan" --model models/demo_franka --task reach --episodes 10 \
  --out out/demo_plan_franka_reach.json | tee out/demo_plan.txt
# Push from the final goal image alone (no subgoal images), on two timescales: the slow model plans
# subgoals 1 s apart, the model acts toward them; the flat planner on the same 10 scenes beside it.
"$bin/plan" --model models/demo_franka --task push --hierarchy --episodes 10 --max-steps 20 --no-baselines --oracle none \
  --out out/demo_plan_franka_push_hierarchy.json | tee out/demo_plan_push.txt
# Its first recorded episode replayed by the viewer: goal | executed | imagined plan, energy and distance.
"$bin/rollout-viewer" --plan out/demo_plan_franka_reach.json --episode 0 --frame 1 --screenshot out/plan_replay_franka.png
# Surprise: 40 matched possible/impossible clip pairs (10 per violation type), the franka model's
# prediction error against copy-last, pixel change and a physics oracle; the clips as a dataset.
"$bin/surprise" --model models/demo_franka --pairs 40 \
  --out out/demo_surprise_franka.json --clips out/demo_surprise_clips.h5 --overwrite | tail -9 | tee out/demo_surprise.txt
# One line per stage: what was reached.
/usr/bin/python3 - "$start" <<'PY'
import json, sys, time
enc = json.load(open("models/demo_encoder.pt.eval.json"))
r, rr = enc["ee_image"]["axes_r2"], enc["random_encoder"]["ee_image"]["axes_r2"]
print("demo summary (%.1f min):" % ((time.time() - float(sys.argv[1])) / 60))
print("  stage one: ee image-plane probe R^2 u %.2f v %.2f (random encoder %.2f %.2f), first object %.2f; next-embedding / copy-last %.2f held out"
      % (r[0], r[1], rr[0], rr[1], enc["object_image"]["r2"], enc["train"]["val_ratio_to_copy_last"]))
for robot in ("franka", "ur5"):
    s = json.load(open("models/demo_%s/metrics.json" % robot))["summary"]
    print("  stage two, %s: imagined latents close %.0f %% of the ee gap to the true future at 1 s (%.0f %% at 2 s; floor/copy %.2f),"
          " object %.0f %% at 2 s (floor/copy %.2f), latent ratio %.2f, retrieval %.0f %% at 1 s"
          % (robot, 100 * s["ee_gap_closed_1s"], 100 * s["ee_gap_closed_2s"], s["ee_floor_over_copy_1s"],
             100 * (s["object_gap_closed_2s"] or 0), s["object_floor_over_copy_2s"] or 0, s["latent_ratio_h1"], 100 * s["retrieval_top1_1s"]))
p = json.load(open("out/demo_plan_franka_reach.json"))
print("  plan, franka reach from a goal image: %.0f %% of %d episodes within %.0f cm (random %.0f %%, still %.0f %%, oracle %.0f %%), %.2f s per action"
      % (100 * p["success_rate"], p["episodes"], p["success_cm"], 100 * p["baselines"]["random"]["success_rate"],
         100 * p["baselines"]["still"]["success_rate"], 100 * p["oracle"]["success_rate"], p["seconds_per_action"]))
h = json.load(open("out/demo_plan_franka_push_hierarchy.json"))
print("  plan, franka push from the final goal image alone, two levels: %.0f %% of %d episodes within %.0f cm (flat planner %.0f %%), %.2f s per action"
      % (100 * h["success_rate"], h["episodes"], h["success_cm"], 100 * h["baselines"]["flat"]["success_rate"], h["seconds_per_action"]))
s = json.load(open("out/demo_surprise_franka.json"))
print("  surprise, franka, %d pairs: pairwise accuracy model %.2f, copy-last %.2f, pixel %.2f, physics oracle %.2f; by type %s"
      % (s["pairs"], s["pairwise_accuracy"], s["baselines"]["copy_last"]["pairwise_accuracy"], s["baselines"]["pixel"]["pairwise_accuracy"],
         s["oracle"]["pairwise_accuracy"], ", ".join("%s %.2f" % (t, a) for t, a in s["by_type"].items())))
PY
echo "demo: datasets in data/demo_*.h5 (h5py/robomimic), encoder models/demo_encoder.pt (+ .eval.json)," \
     "stage-two models, metrics.json and plots in models/demo_{franka,ur5}/, viewer export out/rollout_franka.png," \
     "planning results out/demo_plan_franka_reach.json (+ _distance/_energy/_success.png, _replay.h5; viewer export out/plan_replay_franka.png)" \
     "and out/demo_plan_franka_push_hierarchy.json (two levels, from the final goal image)," \
     "surprise results out/demo_surprise_franka.json (+ _<type>.png) and clips out/demo_surprise_clips.h5"
