"""Checks a rollout-viewer screenshot of a surprise clip: the surprise plot has the model's curve and a
red marker at the clip's violation frame (where the dataset says it is)."""
import json
import sys

import h5py
import numpy as np
from PIL import Image

shot, data = sys.argv[1], sys.argv[2]
img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
layout = json.load(open(shot + ".json"))
x, y, w, h = layout["surprise_plot"]
assert w > 50 and h > 30, f"no surprise plot drawn: {layout['surprise_plot']}"
with h5py.File(data, "r") as f:
    g = f["data"][layout["episode"]]
    frame, steps = int(g.attrs["violation_frame"]), len(g["actions"])
    assert len(g["surprise_model"]) > 1
expected = x + w * frame / (steps - 1)
vx = layout["violation_x"]
assert abs(vx - expected) <= 1.5, f"violation marked at x={vx}, frame {frame} is at {expected:.1f}"


def near(pixels, color):
    return (np.abs(pixels - np.array(color)).max(axis=-1) <= 30).sum()


column = img[y:y + h, vx]
assert near(column, (255, 60, 60)) >= h // 2, f"the violation marker is missing at x={vx}"
box = img[y:y + h, x:x + w * 6 // 10]  # the left of the plot: the legend is at the right
assert near(box, (80, 160, 255)) >= 20, "the model's surprise curve is missing"
print("check_surprise_screenshot: ok", layout["episode"], "violation frame", frame)
