#!/usr/bin/env python3
"""Largest absolute difference between the parameters and buffers of two LibTorch archives (pretrain's
checkpoints, adapt's model.pt), read with Debian's python3-torch. Exit 0 when it is <= TOL.
usage: compare_checkpoints.py A B TOL [SUBMODULE ...]   (no SUBMODULE: the whole archive)"""
import sys

import torch


def tensors(module):
    out = {("p:" + k): v for k, v in module.named_parameters()}
    out.update({("b:" + k): v for k, v in module.named_buffers()})
    return out


def main(a_path, b_path, tol, subs):
    a, b = torch.jit.load(a_path), torch.jit.load(b_path)
    worst, where, count = 0.0, "", 0
    for sub in subs or [None]:
        ta = tensors(getattr(a, sub) if sub else a)
        tb = tensors(getattr(b, sub) if sub else b)
        if ta.keys() != tb.keys():
            print("FAIL: the archives hold different tensors:", sorted(set(ta) ^ set(tb))[:5])
            return 1
        for k in ta:
            d = (ta[k].double() - tb[k].double()).abs().max().item() if ta[k].numel() else 0.0
            count += 1
            if d > worst:
                worst, where = d, (sub + "." if sub else "") + k
    print(f"{count} tensors, max abs difference {worst:.3g} ({where or '-'}), tolerance {tol:g}")
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
