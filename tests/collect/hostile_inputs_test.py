"""Hostile and damaged inputs for every program that reads datasets or checkpoints: truncated and
byte-flipped HDF5 files, an episode whose arrays disagree in length, wrong dtypes and shapes, NaN/Inf,
a missing episode file behind an external link, truncated and foreign checkpoints, and seeded random
byte flips. Each run must either fail with one clear message naming the file (exit status 1, no
crash, no HDF5 error stack, no partial output) or, for a random flip that changed no data (it hit
unused bytes), succeed. Bounded and seeded; programs not built (torch, viewer) are skipped.

Usage: hostile_inputs_test.py BIN_DIR
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BIN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="embody_hostile_")
EPISODE = "ok.h5.parts/episode_0000009.h5"  # demo_9: a validation episode, so every program reads it
failures = []


def have(program):
    return os.path.exists(os.path.join(BIN, program))


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=300)


def variant(name):
    d = os.path.join(TMP, "v", name)
    os.makedirs(d)
    shutil.copy(os.path.join(TMP, "ok.h5"), d)
    shutil.copytree(os.path.join(TMP, "ok.h5.parts"), os.path.join(d, "ok.h5.parts"))
    return d


def flip(path, count, seed):
    rng = random.Random(seed)
    data = bytearray(open(path, "rb").read())
    for _ in range(count):
        data[rng.randrange(len(data))] ^= 0xFF
    open(path, "wb").write(data)


def truncate(path, fraction):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * fraction)])


def edit(d, fn):
    with h5py.File(os.path.join(d, EPISODE), "r+") as f:
        fn(f["demo_9"])


def replace(g, key, value):
    del g[key]
    g[key] = value


def same_data(a_path, b_path, skip_images=False):
    """Whether every dataset and attribute of two HDF5 files reads back equal (h5py); with
    skip_images, the frames (obs/*_image) are left out."""
    try:
        with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
            def walk(x, y):
                if set(x.keys()) != set(y.keys()) or set(x.attrs.keys()) != set(y.attrs.keys()):
                    return False
                for k in x.attrs:
                    if not np.array_equal(np.asarray(x.attrs[k]), np.asarray(y.attrs[k])):
                        return False
                for k in x:
                    if skip_images and k.endswith("_image"):
                        continue
                    if isinstance(x[k], h5py.Group):
                        if not walk(x[k], y[k]):
                            return False
                    elif not np.array_equal(x[k][()], y[k][()], equal_nan=False):
                        return False
                return True
            return walk(a, b)
    except Exception:
        return False


# The data: a tiny franka dataset (12 episodes, demo_9 held out) and an encoder trained on it.
run([os.path.join(BIN, "simcollect"), "--robot", "franka", "--episodes", "12", "--steps", "12", "--image-size", "32",
     "--seed", "2", "--out", "ok.h5"], TMP).check_returncode()
if have("pretrain"):
    run([os.path.join(BIN, "pretrain"), "--data", "ok.h5", "--out", "enc.pt", "--steps", "2", "--batch", "4", "--width", "8",
         "--dim", "16", "--frame-skip", "2", "--rollout", "2", "--probe-episodes", "4"], TMP).check_returncode()

cases = {}  # name -> (folder, expect failure)
d = variant("top_truncated"); truncate(os.path.join(d, "ok.h5"), 0.5); cases["top_truncated"] = (d, True)
d = variant("top_flipped"); flip(os.path.join(d, "ok.h5"), 40, 1); cases["top_flipped"] = (d, True)
d = variant("episode_truncated"); truncate(os.path.join(d, EPISODE), 0.5); cases["episode_truncated"] = (d, True)
d = variant("episode_missing"); os.remove(os.path.join(d, EPISODE)); cases["episode_missing"] = (d, True)
d = variant("length_mismatch"); edit(d, lambda g: replace(g, "actions", g["actions"][:-3])); cases["length_mismatch"] = (d, True)
d = variant("image_length"); edit(d, lambda g: replace(g, "obs/camera0_image", g["obs/camera0_image"][:-2])); cases["image_length"] = (d, True)
d = variant("wrong_dtype"); edit(d, lambda g: replace(g, "obs/robot0_eef_pos", g["obs/robot0_eef_pos"][()].astype(np.int32)))
cases["wrong_dtype"] = (d, True)
d = variant("image_dtype"); edit(d, lambda g: replace(g, "obs/camera0_image", g["obs/camera0_image"][()].astype(np.float32)))
cases["image_dtype"] = (d, True)
d = variant("wrong_shape"); edit(d, lambda g: replace(g, "obs/camera0_image", g["obs/camera0_image"][:, :16]))
cases["wrong_shape"] = (d, True)
d = variant("joint_widths"); edit(d, lambda g: replace(g, "obs/robot0_joint_vel", g["obs/robot0_joint_vel"][:, :3]))
cases["joint_widths"] = (d, True)
d = variant("nan_action"); edit(d, lambda g: g["actions"].__setitem__((3, 1), np.nan)); cases["nan_action"] = (d, True)
d = variant("inf_state"); edit(d, lambda g: g["states"].__setitem__((2, 5), np.inf)); cases["inf_state"] = (d, True)
for seed in range(6):  # random damage: either a clear failure or, if no data changed, a success
    d = variant("random_flips_%d" % seed)
    flip(os.path.join(d, EPISODE), 3, 1000 + seed)
    cases["random_flips_%d" % seed] = (d, None)

programs = {
    "info": lambda d: [os.path.join(BIN, "simcollect"), "info", "ok.h5"],
    "merge": lambda d: [os.path.join(BIN, "simcollect"), "merge", "merged.h5", "ok.h5"],
}
outputs = {"merge": "merged.h5"}
if have("pretrain"):
    programs["pretrain"] = lambda d: [os.path.join(BIN, "pretrain"), "--data", "ok.h5", "--out", "e.pt", "--steps", "2", "--batch", "4",
                                      "--width", "8", "--dim", "16", "--frame-skip", "2", "--rollout", "2", "--probe-episodes", "4"]
    programs["encode"] = lambda d: [os.path.join(BIN, "encode"), "--data", "ok.h5", "--encoder", os.path.join(TMP, "enc.pt")]
    programs["adapt"] = lambda d: [os.path.join(BIN, "adapt"), "--embodiment", "franka", "--data", "ok.h5", "--encoder",
                                   os.path.join(TMP, "enc.pt"), "--out", "m", "--steps", "2", "--batch", "4", "--width", "16", "--depth", "1",
                                   "--context", "2", "--frame-skip", "2", "--eval-seconds", "0.2"]
    outputs.update({"pretrain": "e.pt", "adapt": "m", "encode": "ok.h5.latents"})
if have("rollout-viewer") and shutil.which("xvfb-run"):
    # Our own auth file (-f): xvfb-run's own temporary folder sometimes fails to be removed under load,
    # and xvfb-run then exits 5 whatever the viewer did.
    programs["viewer"] = lambda d: ["xvfb-run", "-a", "-f", os.path.join(TMP, "Xauthority"), os.path.join(BIN, "rollout-viewer"), "--data",
                                    "ok.h5", "--episode", "9", "--screenshot", "s.png"]
    outputs["viewer"] = "s.png"


def judge(label, r, expect_failure, output, clean):
    errors = [l for l in r.stderr.splitlines() if "error" in l.lower()]
    spew = [l for l in r.stderr.splitlines() if any(s in l for s in ("HDF5-DIAG", "terminate called", "Aborted", "Segmentation", "frame #"))]
    if spew:
        failures.append("%s: crash or error spew: %s" % (label, spew[0]))
    elif r.returncode == 0:
        if expect_failure or (expect_failure is None and not clean):
            failures.append("%s: accepted damaged input (exit 0)" % label)
    elif r.returncode != 1:
        failures.append("%s: exit status %d (a crash?): %s" % (label, r.returncode, r.stderr.strip()[-200:]))
    elif len(errors) != 1 or "ok.h5" not in errors[0] and ".pt" not in errors[0]:
        failures.append("%s: wanted one message naming the file, got: %s" % (label, r.stderr.strip()[-300:]))
    elif output and os.path.exists(output):
        failures.append("%s: a refused run left %s behind" % (label, output))
    print("%-40s exit %d  %s" % (label, r.returncode, (errors[-1] if errors else "")[:150]), flush=True)


# `simcollect info` and `merge` check an episode's structure and the checksums of everything but its
# frames (reading every frame of a large dataset is for the programs that use them: pretrain,
# encode, adapt, the viewer), so for them random damage that changed only frames is not damage.
FRAME_BLIND = ("info", "merge")
for name, (d, expect) in cases.items():
    clean = expect is None and same_data(os.path.join(TMP, EPISODE), os.path.join(d, EPISODE))
    clean_but_frames = expect is None and same_data(os.path.join(TMP, EPISODE), os.path.join(d, EPISODE), skip_images=True)
    for program, cmd in programs.items():
        output = outputs.get(program)
        r = run(cmd(d), d)
        judge("%s / %s" % (name, program), r, expect, os.path.join(d, output) if output else None,
              clean_but_frames if program in FRAME_BLIND else clean)
        if r.returncode == 0 and output and os.path.exists(os.path.join(d, output)):  # the next program starts clean
            p = os.path.join(d, output)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

# Checkpoints: truncated, and one of another kind where an encoder is wanted.
if have("pretrain"):
    d = os.path.join(TMP, "ckpt")
    os.makedirs(d)
    shutil.copy(os.path.join(TMP, "enc.pt"), os.path.join(d, "enc.pt"))
    truncate(os.path.join(d, "enc.pt"), 0.5)
    for program in ("encode", "adapt"):
        cmd = programs[program](d)
        cmd[cmd.index("--data") + 1] = os.path.join(TMP, "ok.h5")
        cmd[cmd.index("--encoder") + 1] = os.path.join(d, "enc.pt")
        judge("truncated encoder / " + program, run(cmd, d), True, os.path.join(d, "m") if program == "adapt" else None, False)
    # A good encoder but a truncated stage-two model given to plan and surprise.
    ok = run(programs["adapt"](d)[:3] + ["--data", os.path.join(TMP, "ok.h5"), "--encoder", os.path.join(TMP, "enc.pt"), "--out", "m",
                                          "--steps", "2", "--batch", "4", "--width", "16", "--depth", "1", "--context", "2",
                                          "--frame-skip", "2", "--eval-seconds", "0.2"], d)
    ok.check_returncode()
    truncate(os.path.join(d, "m", "model.pt"), 0.5)
    for program, extra in (("plan", ["--episodes", "1", "--out", "p.json"]), ("surprise", ["--pairs", "1", "--steps", "32", "--out", "s.json"])):
        if have(program):
            judge("truncated model / " + program, run([os.path.join(BIN, program), "--embodiment", "franka", "--model", "m", "--encoder",
                                                       os.path.join(TMP, "enc.pt")] + extra, d), True, os.path.join(d, extra[-1]), False)
    # The model where the encoder is wanted.
    judge("model as encoder / encode", run([os.path.join(BIN, "encode"), "--data", os.path.join(TMP, "ok.h5"), "--encoder",
                                            os.path.join(TMP, "ckpt", "m", "train_state.pt")], d), True, None, False)

shutil.rmtree(TMP)
if failures:
    print("\n".join(["FAIL: " + f for f in failures]))
    sys.exit(1)
print("hostile inputs: ok")
