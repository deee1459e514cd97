"""Checks a rollout-viewer screenshot: its size, non-uniform true and imagined panels, and that the
true panel's recorded frame equals the stored frame pixel for pixel (nearest-neighbour upscaling)."""
import json
import sys

import h5py
import numpy as np
from PIL import Image

shot, data, width, height = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
img = np.asarray(Image.open(shot).convert("RGB"))
layout = json.load(open(shot + ".json"))
assert img.shape == (height, width, 3), img.shape
for name in ("true_view", "imagined_view"):
    x, y, w, h = layout[name]
    panel = img[y:y + h, x:x + w].reshape(-1, 3)
    assert len(np.unique(panel, axis=0)) > 50, f"{name} looks uniform"
x, y, w, h = layout["true_frame"]
s = layout["scale"]
with h5py.File(data, "r") as f:
    frame = f["data"][layout["episode"]]["obs/camera0_image"][layout["frame"]]
centers = img[y + s // 2:y + h:s, x + s // 2:x + w:s]
assert centers.shape == frame.shape, (centers.shape, frame.shape)
mismatch = np.abs(centers.astype(int) - frame.astype(int)).max()
assert mismatch == 0, f"true panel differs from the stored frame by up to {mismatch}"
print("check_screenshot: ok", layout["episode"], "frame", layout["frame"], "scale", s)
