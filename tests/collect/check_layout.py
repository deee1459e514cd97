"""Reads a simcollect dataset the way a robomimic user does (h5py), and checks its layout.

Usage: check_layout.py FILE EPISODES STEPS IMAGE_SIZE CAMERAS
"""
import json
import sys

import h5py
import numpy as np


def main():
    path, episodes, steps, size, cameras = sys.argv[1], *map(int, sys.argv[2:6])
    with h5py.File(path, "r") as f:
        data = f["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"].startswith("Embody-"), env_args
        assert "env_kwargs" in env_args and "type" in env_args
        demos = sorted(data.keys(), key=lambda d: int(d[5:]))
        assert len(demos) == episodes, demos
        assert int(data.attrs["total"]) == episodes * steps
        train = [d.decode("utf-8") for d in np.array(f["mask/train"][:])]
        valid = [d.decode("utf-8") for d in np.array(f["mask/valid"][:])]
        assert sorted(train + valid, key=lambda d: int(d[5:])) == demos
        assert len(valid) == episodes // 10, valid
        for name in demos:
            demo = data[name]
            n = int(demo.attrs["num_samples"])
            assert n == steps
            actions = demo["actions"][()]
            assert actions.shape == (n, 7) and np.all(np.abs(actions) <= 1.0), actions.shape
            assert demo["states"].shape[0] == n and demo["states"].dtype == np.float64
            assert demo["rewards"].shape == (n,) and demo["dones"].shape == (n,)
            assert demo["dones"][-1] == 1
            assert demo["action_dict/joint_position"].shape[0] == n
            obs = demo["obs"]
            for key, width in [("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("robot0_gripper_qpos", 2)]:
                assert obs[key].shape == (n, width), (key, obs[key].shape)
            assert obs["robot0_joint_pos"].shape[0] == n and obs["object"].shape[0] == n
            for c in range(cameras):
                image = obs["camera%d_image" % c]
                assert image.shape == (n, size, size, 3) and image.dtype == np.uint8
                assert image.chunks == (1, size, size, 3), image.chunks
                assert image.compression == "gzip"
                assert image[0].std() > 0, "uniform frame"
                assert demo["camera/camera%d/intrinsics" % c].shape == (3, 3)
                assert demo["camera/camera%d/extrinsics" % c].shape == (4, 4)
            # robomimic's default loader reads next_obs: every obs key, one step ahead, the last repeated,
            # stored as views over obs (no frames copied).
            assert sorted(demo["next_obs"].keys()) == sorted(obs.keys()), (list(demo["next_obs"].keys()), list(obs.keys()))
            for key in obs:
                o, nxt = obs[key][()], demo["next_obs"][key]
                assert nxt.is_virtual, key
                nxt = nxt[()]
                assert nxt.shape == o.shape and nxt.dtype == o.dtype, (key, nxt.shape, o.shape)
                assert np.array_equal(nxt[:-1], o[1:]) and np.array_equal(nxt[-1], o[-1]), key
            draw = json.loads(demo.attrs["randomization"])
            assert len(draw["cameras"]) == cameras
            assert demo.attrs["embodiment"] == "franka"
            assert demo.attrs["task"] in ("reach", "push", "pick", "wander")
    print("layout ok: %d episodes" % episodes)


if __name__ == "__main__":
    main()
