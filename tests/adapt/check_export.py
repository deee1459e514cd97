#!/usr/bin/env python3
"""Loads an `adapt --export` module with Debian's python3-torch and checks it against outputs the C++
model computed (written by the test with torch::pickle_save). Exit 0 when every output agrees to 1e-5.
usage: check_export.py MODULE.ts IO.pt EMBODIMENT"""
import sys

import torch


def main(module_path, io_path, embodiment):
    m = torch.jit.load(module_path)
    (lat, prop, act, cam, pred, p0, a0, step, lat_k, prop_k, actions, horizon, rolled, rolled_prop) = torch.load(io_path)
    problems = []
    if m.embodiment != embodiment or m.encoder_hash != "hash-of-the-encoder":
        problems.append(f"attributes: {m.embodiment} {m.encoder_hash}")
    with torch.no_grad():
        checks = {
            "predict": (m.predict(lat, prop, act, cam), pred),
            "step_dynamics": (m.step_dynamics(p0, a0), step),
        }
        got_lat, got_prop = m.rollout(lat_k, prop_k, actions, cam, int(horizon))
        checks["rollout latents"] = (got_lat, rolled)
        checks["rollout proprio"] = (got_prop, rolled_prop)
    for name, (got, want) in checks.items():
        diff = (got - want).abs().max().item()
        print(f"{name}: max |python - C++| = {diff:.2e}")
        if got.shape != want.shape or not diff <= 1e-5:
            problems.append(name)
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
