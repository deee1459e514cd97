"""Reads a simcollect dataset the way a robomimic user does (h5py), and checks its layout.

Usage: check_layout.py FILE EPISODES STEPS IMAGE_SIZE CAMERAS [EYE_IN_HAND]
(EYE_IN_HAND 1: the episodes also hold the hand camera, robomimic's robot0_eye_in_hand, with a pose per frame.)
"""
import json
import sys

import h5py
import numpy as np


def main():
    path, episodes, steps, size, cameras = sys.argv[1], *map(int, sys.argv[2:6])
    eye_in_hand = len(sys.argv) > 6 and sys.argv[6] == "1"
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
            if eye_in_hand:
                # robomimic's name and layout; the camera moves with the hand: one pose per frame.
                image = obs["robot0_eye_in_hand_image"]
                assert image.shape == (n, size, size, 3) and image.dtype == np.uint8 and image.chunks == (1, size, size, 3)
                assert image[0].std() > 0, "uniform eye-in-hand frame"
                poses = demo["camera/robot0_eye_in_hand/extrinsics"][()]
                assert poses.shape == (n, 4, 4), poses.shape
                assert np.allclose(poses[:, 3], [0, 0, 0, 1]), "not homogeneous poses"
                rotations = poses[:, :3, :3]
                assert np.allclose(np.einsum("nij,nkj->nik", rotations, rotations), np.eye(3), atol=1e-6), "not rotations"
                assert demo["camera/robot0_eye_in_hand/intrinsics"].shape == (3, 3)
                assert "robot0_eye_in_hand" in env_args["env_kwargs"]["camera_names"], env_args
            else:
                assert "robot0_eye_in_hand_image" not in obs
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
