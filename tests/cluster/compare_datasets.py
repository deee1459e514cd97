#!/usr/bin/env python3
"""Exit 0 when two simcollect datasets hold the same episodes: the same demos, every array under each
demo equal element for element (frames, actions, states, obs, next_obs, cameras, ...) and the same
per-episode attributes. Dataset-level bookkeeping (how it was sharded, masks' order) may differ.
usage: compare_datasets.py A.h5 B.h5"""
import sys

import h5py
import numpy as np


def arrays(group, prefix=""):
    out = {}
    for name, item in group.items():
        path = prefix + name
        if isinstance(item, h5py.Dataset):
            out[path] = item[()]
        else:
            out.update(arrays(item, path + "/"))
    return out


def attrs(obj):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()}


def main(a_path, b_path):
    problems = []
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        demos_a, demos_b = sorted(a["data"].keys()), sorted(b["data"].keys())
        if demos_a != demos_b:
            print(f"FAIL: demos differ: {demos_a[:5]}... vs {demos_b[:5]}...")
            return 1
        for demo in demos_a:
            ga, gb = a["data"][demo], b["data"][demo]
            xa, xb = arrays(ga), arrays(gb)
            if sorted(xa) != sorted(xb):
                problems.append(f"{demo}: arrays {sorted(set(xa) ^ set(xb))} in one only")
                continue
            for key in xa:
                if xa[key].shape != xb[key].shape or not np.array_equal(xa[key], xb[key]):
                    problems.append(f"{demo}/{key} differs")
            if attrs(ga) != attrs(gb):
                problems.append(f"{demo}: attributes differ")
        for split in ("train", "valid"):
            ma = sorted(x.decode() if isinstance(x, bytes) else x for x in a["mask"][split][()])
            mb = sorted(x.decode() if isinstance(x, bytes) else x for x in b["mask"][split][()])
            if ma != mb:
                problems.append(f"mask/{split} differs")
        print(f"{len(demos_a)} episodes compared, {sum(len(arrays(a['data'][d])) for d in demos_a)} arrays")
    for p in problems[:20]:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
