#!/usr/bin/python3
"""How predictable is the frame-to-frame change of a frozen encoder's latents?

A diagnostic for stage two (docs/adapt.md): trains a one-step predictor z_t -> z_{t+1} on a
latent cache written by `encode`/`adapt` and prints its held-out L1 error as a ratio to copy-last
(1 = no better than copying the last frame), measured the way `adapt` measures it (latents
layer-normalized per token, L1 over tokens and dimensions). Uses Debian's python3-torch and
python3-h5py (scripts/install-deps.sh installs both); nothing in the build depends on it.

  scripts/latent_predictability.py --cache data/franka.h5.latents/<hash>.h5 --data data/franka.h5 \
      --model tokenmlp --seconds 300

Models (inputs: z_t, z_t - z_{t-1}, action_t, normalized proprio at t and t-1):
  tokenmlp     residual MLP blocks per token, group norm over the frame's tokens, FiLM conditioning
  conv         the same blocks with 3x3 convolutions over the token grid
  transformer  a pre-norm transformer over the frame's tokens plus one conditioning token
--oracle gives every model the true proprio of frame t+1 instead of t-1 (is the robot's own
motion what is hard to predict?). The first 85 % of --episodes train, the rest are held out.
"""
import argparse
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def load(args):
    cache, data = h5py.File(args.cache, "r"), h5py.File(args.data, "r")["data"]
    demos = [f"demo_{i}" for i in range(args.episodes)]
    missing = [k for k in demos if k not in data or k not in cache]
    if missing:
        raise SystemExit(f"{missing[0]} is not in both {args.data} and {args.cache}: lower --episodes")
    z = np.stack([cache[k]["latents"][:].astype(np.float32) for k in demos])
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
    keys = ["joint_pos", "joint_vel", "eef_pos", "eef_quat", "gripper_qpos"]
    proprio = np.stack([np.concatenate([data[k][f"obs/robot0_{n}"][:] for n in keys if f"obs/robot0_{n}" in data[k]], 1) for k in demos])
    flat = proprio.reshape(-1, proprio.shape[-1])
    proprio = (proprio - flat.mean(0)) / (flat.std(0) + 1e-3)
    actions = np.stack([data[k]["actions"][:] for k in demos])
    return torch.tensor(z), torch.tensor(actions, dtype=torch.float32), torch.tensor(proprio, dtype=torch.float32)


def describe(z):
    dz = z[:, 1:] - z[:, :-1]
    corr = (dz[:, 1:] * dz[:, :-1]).sum() / ((dz[:, 1:] ** 2).sum() * (dz[:, :-1] ** 2).sum()).sqrt()
    copy = dz[:, 1:].abs().mean()
    extrap = {a: ((z[:, 1:-1] + a * dz[:, :-1] - z[:, 2:]).abs().mean() / copy).item() for a in (0.25, 0.5, 1.0)}
    print(f"latents {tuple(z.shape)}: copy-last L1 {copy:.4f}; correlation of consecutive changes {corr:.3f}; "
          "extrapolating the last change, ratio to copy-last: " + ", ".join(f"a={a} {r:.3f}" for a, r in extrap.items()))


class Block(torch.nn.Module):
    def __init__(self, width, cond, kernel):
        super().__init__()
        self.norm = torch.nn.GroupNorm(8, width)
        self.film = torch.nn.Linear(cond, 2 * width)
        self.c1 = torch.nn.Conv2d(width, width, kernel, padding=kernel // 2)
        self.c2 = torch.nn.Conv2d(width, width, kernel, padding=kernel // 2)

    def forward(self, x, cond):
        g, b = self.film(cond)[:, :, None, None].chunk(2, 1)
        return x + self.c2(F.gelu(self.c1(F.gelu(self.norm(x) * (1 + g) + b))))


class Predictor(torch.nn.Module):
    def __init__(self, model, tokens, dim, cond, width=128, depth=4):
        super().__init__()
        self.model, self.grid = model, int(round(tokens ** 0.5))
        self.inp = torch.nn.Linear(2 * dim, width)
        self.pos = torch.nn.Parameter(torch.randn(tokens, width) * 0.02)
        if model == "transformer":
            self.cond = torch.nn.Linear(cond, width)
            layer = torch.nn.TransformerEncoderLayer(width, 4, 4 * width, 0.0, activation="gelu", batch_first=True, norm_first=True)
            self.body = torch.nn.TransformerEncoder(layer, 3)
            self.norm = torch.nn.LayerNorm(width)
        else:
            if self.grid * self.grid != tokens:
                raise SystemExit(f"--model {model} needs a square token grid, the cache has {tokens} tokens")
            self.body = torch.nn.ModuleList([Block(width, cond, 3 if model == "conv" else 1) for _ in range(depth)])
        self.out = torch.nn.Linear(width, dim)

    def forward(self, zt, zp, cond):
        x = self.inp(torch.cat([zt, zt - zp], -1)) + self.pos
        if self.model == "transformer":
            c = self.cond(cond).unsqueeze(1)
            x = self.norm(self.body(torch.cat([c, x + c], 1)))[:, 1:]
        else:
            b, n, w = x.shape
            x = x.transpose(1, 2).reshape(b, w, self.grid, self.grid)
            for block in self.body:
                x = block(x, cond)
            x = x.reshape(b, w, n).transpose(1, 2)
        return zt + self.out(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", required=True, help="latent cache (data/<robot>.h5.latents/<encoder hash>.h5)")
    p.add_argument("--data", required=True, help="the dataset the cache belongs to")
    p.add_argument("--episodes", type=int, default=150)
    p.add_argument("--model", choices=["tokenmlp", "conv", "transformer"], default="tokenmlp")
    p.add_argument("--oracle", action="store_true", help="condition on the true proprio of frame t+1")
    p.add_argument("--seconds", type=float, default=300, help="training time (unless --steps)")
    p.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead (deterministic)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    z, actions, proprio = load(args)
    describe(z)
    episodes, frames, tokens, dim = z.shape
    train = int(episodes * 0.85)
    if train < 1 or train == episodes:
        raise SystemExit("need at least 2 episodes (85 % train, the rest held out)")

    def sample(ep, t):
        other = proprio[ep, t + 1] if args.oracle else proprio[ep, t - 1]
        return z[ep, t], z[ep, t - 1], torch.cat([actions[ep, t], proprio[ep, t], other], -1), z[ep, t + 1]

    model = Predictor(args.model, tokens, dim, actions.shape[-1] + 2 * proprio.shape[-1])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    held_ep = torch.arange(train, episodes).repeat_interleave(frames - 2)
    held_t = torch.arange(1, frames - 1).repeat(episodes - train)

    def ratio(zt, zp, c, y):  # L1 of the prediction / L1 of copy-last
        return (model(zt, zp, c) - y).abs().mean() / (zt - y).abs().mean()

    def held_out():
        with torch.no_grad():
            return ratio(*sample(held_ep, held_t)).item()

    gen = torch.Generator().manual_seed(args.seed)
    start, step = time.time(), 0
    while (step < args.steps) if args.steps > 0 else (time.time() - start < args.seconds):
        ep = torch.randint(0, train, (args.batch,), generator=gen)
        t = torch.randint(1, frames - 1, (args.batch,), generator=gen)
        loss = ratio(*sample(ep, t))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step} ({time.time() - start:.0f} s): train ratio {loss.item():.3f}, held-out ratio {held_out():.3f}", flush=True)
    print(f"{args.model}{' oracle' if args.oracle else ''}: {step} steps in {time.time() - start:.0f} s, "
          f"{train} training / {episodes - train} held-out episodes: held-out ratio to copy-last {held_out():.3f}")


if __name__ == "__main__":
    main()
