#!/usr/bin/python3
"""What does a frozen encoder's latent carry? Ridge probes to every factor a scene records.

A diagnostic for stage one (docs/pretrain.md): fits one linear (ridge) read-out per factor from
the latents of a latent cache (written by `encode` or `adapt`, one vector per frame, or tokens
averaged) to that factor, on the first 80 % of the dataset's episodes, and prints its R^2 per axis
on the rest. Factors: per frame, the end effector's and each object's world position; per episode
(the randomization draw the dataset stores), the camera's position and target, the colours of the
materials, the lights and the ambient level. A factor that varies between episodes only is probed
across held-out *episodes*, so a negative R^2 there means "not carried" (the read-out does worse
than the held-out mean). An object is probed on the frames where camera0 shows it (its position
projects inside the image, in front of the camera; the share left out is printed), as `pretrain`'s
probes do. Uses Debian's python3-h5py and numpy; nothing in the build depends on it.

  scripts/latent_factors.py data/demo_franka.h5 data/demo_franka.h5.latents/<encoder hash>.h5
"""
import json
import sys

import h5py
import numpy as np


def main(data_path, cache_path, ridge=10.0):
    data, cache = h5py.File(data_path, "r")["data"], h5py.File(cache_path, "r")
    names = sorted(data.keys(), key=lambda s: int(s.split("_")[1]))
    latents, episode_of, factors, in_view = [], [], {}, {}

    def add(name, values, visible=None):
        factors.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
        in_view.setdefault(name, []).append(np.ones(len(values), bool) if visible is None else visible)

    def visible_in(demo, points):  # projects inside camera0's image, in front of it (OpenGL camera, looking along -z)
        if "camera" not in demo or "camera0" not in demo["camera"]:
            return None
        pose, k = demo["camera/camera0/extrinsics"][:], demo["camera/camera0/intrinsics"][:]
        size = demo["obs/camera0_image"].shape[1]
        c = (points - pose[:3, 3]) @ pose[:3, :3]
        depth = -c[:, 2]
        u = k[0, 0] * c[:, 0] / np.maximum(depth, 1e-6) + k[0, 2]
        v = k[1, 2] - k[1, 1] * c[:, 1] / np.maximum(depth, 1e-6)
        return (depth > 0.05) & (u >= 0) & (u <= size) & (v >= 0) & (v <= size)

    for i, name in enumerate(names):
        z = cache[name]["latents"][:]
        z = z.reshape(z.shape[0], -1, z.shape[-1]).mean(1)  # tokens averaged: one vector per frame
        frames = len(z)
        latents.append(z)
        episode_of += [i] * frames
        demo = data[name]
        add("ee position", demo["obs/robot0_eef_pos"][:])
        objects = demo["obs/object"][:] if "object" in demo["obs"] else np.zeros((frames, 0))
        draw = json.loads(demo.attrs["randomization"]) if "randomization" in demo.attrs else {}
        bodies = [o["body"] for o in draw.get("objects", [])] or ["object%d" % j for j in range(objects.shape[1] // 7)]
        for j, body in enumerate(bodies[: objects.shape[1] // 7]):
            add(body + " position", objects[:, 7 * j : 7 * j + 3], visible_in(demo, objects[:, 7 * j : 7 * j + 3]))
        for c, camera in enumerate(draw.get("cameras", [])):
            add("camera%d position" % c, np.tile(camera["position"], (frames, 1)))
            add("camera%d target" % c, np.tile(camera["target"], (frames, 1)))
        for material, rgba in sorted(draw.get("material_rgba", {}).items()):
            add("colour " + material, np.tile(rgba[:3], (frames, 1)))
        for l, light in enumerate(draw.get("lights", [])):
            add("light%d diffuse, dir" % l, np.tile([light["diffuse"]] + list(light["dir"]), (frames, 1)))
        if "ambient" in draw:
            add("ambient", np.full((frames, 1), draw["ambient"]))
    x = np.concatenate(latents)
    episode_of = np.array(episode_of)
    test = episode_of >= int(len(names) * 0.8)
    train = ~test
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    a = np.c_[x, np.ones(len(x))]
    gram = a[train].T @ a[train] + ridge * np.eye(a.shape[1])
    held_out = len(names) - int(len(names) * 0.8)
    print("%d episodes (%d held out), %d-dim latents; ridge %g; R^2 per axis on held-out episodes" % (len(names), held_out, x.shape[1], ridge))
    for name, values in factors.items():
        y = np.concatenate(values)
        if len(y) != len(x):
            continue  # an episode lacked the factor
        shown = np.concatenate(in_view[name])
        fit, score = train & shown, test & shown
        if shown.all():
            w = np.linalg.solve(gram, a[train].T @ y[train])
        else:  # the factor's own in-view frames
            w = np.linalg.solve(a[fit].T @ a[fit] + ridge * np.eye(a.shape[1]), a[fit].T @ y[fit])
        residual = ((y[score] - a[score] @ w) ** 2).sum(0)
        total = ((y[score] - y[score].mean(0)) ** 2).sum(0)
        r2 = np.where(total > 1e-12, 1 - residual / np.maximum(total, 1e-12), np.nan)
        left_out = "" if shown.all() else ", %.1f %% of frames out of view left out" % (100 * (1 - shown.mean()))
        print("  %-28s %s   (std %.3g%s)" % (name, " ".join("%6.2f" % v for v in r2), y[shown].std(0).mean(), left_out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
