// Tests for adapt/world_model/readout.cc: projection, out-of-view handling and the ridge read-out.
#include "adapt/world_model/readout.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "adapt/encoder/jepa.h"
#include "adapt/world_model/stage_two.h"
#include "collect/collector.h"
#include "collect/dataset.h"

namespace embody::adapt {
namespace {

// Tests that a point straight ahead of a camera lands in the image centre and one behind it is out
// of view.
TEST(ReadoutTest, ProjectsThroughThePinholeAndFlagsPointsOutOfView) {
  // Camera at (0, 0, 1) looking down -z (identity rotation), 64 px, focal 32 px.
  const std::vector<double> extrinsics = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1};
  const std::vector<double> intrinsics = {32, 0, 32, 0, 32, 32, 0, 0, 1};
  const auto world = torch::tensor({0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 2.0, 5.0, 0.0, 0.0}, torch::kFloat64).reshape({4, 3});
  torch::Tensor in_view;
  const auto uv = ProjectToImage(world, extrinsics, intrinsics, 64, &in_view);
  EXPECT_NEAR(32.0, uv[0][0].item<double>(), 1e-9);
  EXPECT_NEAR(32.0, uv[0][1].item<double>(), 1e-9);
  EXPECT_NEAR(48.0, uv[1][0].item<double>(), 1e-9);  // 0.5 m right at 1 m depth: 16 px right
  EXPECT_TRUE(in_view[0].item<bool>());
  EXPECT_TRUE(in_view[1].item<bool>());
  EXPECT_FALSE(in_view[2].item<bool>());  // behind the camera
  EXPECT_FALSE(in_view[3].item<bool>());  // far outside the image
}

// Tests the read-out on synthetic latents that carry the targets through a known linear code: on
// true latents it recovers the targets (so a perfect predictor closes the whole gap and copy-last
// none), and out-of-view image-plane values, however wild, do not spoil the fit.
TEST(ReadoutTest, RecoversALinearCodeAndGapClosedIsOneForPerfectZeroForCopy) {
  torch::manual_seed(3);
  const int points = 2, columns = points * kReadoutColumns, dim = 24;
  const auto code = torch::randn({columns, dim}, torch::kFloat64);
  std::vector<torch::Tensor> features;
  std::vector<ReadoutTargets> targets;
  for (int e = 0; e < 20; ++e) {
    // A smooth trajectory per episode; the latents encode it linearly.
    const auto t = torch::linspace(0, 1, 30, torch::kFloat64).unsqueeze(1);
    const auto values = torch::randn({1, columns}, torch::kFloat64) * 10 + t * torch::randn({1, columns}, torch::kFloat64) * 5;
    auto view = torch::ones({30, points}, torch::kBool);
    auto stored = values.clone();
    if (e % 3 == 0) {  // the object leaves the view: its u, v are garbage there
      view.slice(0, 20).select(1, 1).fill_(false);
      stored.slice(0, 20).slice(1, kReadoutColumns, kReadoutColumns + 2).fill_(1e6);
    }
    features.push_back(values.mm(code).unsqueeze(1));  // (frames, N = 1, D)
    targets.push_back({stored, view});
  }
  LinearReadout readout;
  std::vector<torch::Tensor> flat;
  for (const auto& f : features) flat.push_back(ReadoutFeatures(f));
  readout.Fit(flat, targets);
  EXPECT_EQ(7 * 10, readout.out_of_view());  // 7 episodes x 10 frames of the object
  // Held out: a new trajectory; the read-out of its true latents is exact.
  const auto truth = torch::randn({10, columns}, torch::kFloat64) * 10;
  const auto latents = truth.mm(code);
  const auto floor = readout.Apply(latents);
  // Ridge shrinks a little: within 1 % of the targets' size on average (the 1e6 garbage, if fit, would be far off).
  EXPECT_LT((floor - truth).abs().mean().item<double>(), 0.01 * truth.abs().mean().item<double>()) << readout.strength();
  EXPECT_LT((floor - truth).abs().max().item<double>(), 1.0);
  // Errors of a perfect predictor (imagined = true future latents) and of copy-last (the first frame).
  const double floor_error = (floor - truth).norm(2, 1).mean().item<double>();
  const double perfect_error = (readout.Apply(latents) - truth).norm(2, 1).mean().item<double>();
  const double copy_error = (readout.Apply(latents.slice(0, 0, 1).expand_as(latents)) - truth).norm(2, 1).mean().item<double>();
  EXPECT_NEAR(1.0, GapClosed(copy_error, perfect_error, floor_error), 1e-9);
  EXPECT_NEAR(0.0, GapClosed(copy_error, copy_error, floor_error), 1e-9);
  EXPECT_GT(copy_error, 10.0);
}

// Tests that a humanoid's read-out targets are both hands (then the room's objects), the first
// hand being the recorded end effector, and that an arm tracks one site.
TEST(ReadoutTest, HumanoidTracksBothHandsArmOneSite) {
  const auto dir = std::filesystem::temp_directory_path() / ("embody_readout_" + std::to_string(getpid()));
  for (const std::string robot : {"humanoid", "franka"}) {
    collect::CollectConfig c;
    c.robot = robot;
    c.episodes = 1;
    c.steps = 6;
    c.image_size = 32;
    c.seed = 4;
    c.out = (dir / (robot + ".h5")).string();
    collect::Collect(c, {.enabled = false});
    const collect::Dataset ds(c.out);
    const auto targets = EpisodeReadoutTargets(ds, "demo_0", "camera0", 32);
    const int sites = robot == "humanoid" ? 2 : 1;
    std::vector<hsize_t> dims;
    ds.Read<float>("demo_0", "obs/object", &dims);
    EXPECT_EQ(sites, targets.ee_points) << robot;
    EXPECT_EQ(sites + static_cast<int>(dims[1] / 7), targets.points()) << robot;
    const auto eef = ds.Read<float>("demo_0", "obs/robot0_eef_pos");
    for (int t = 0; t < 6; ++t) {
      for (int k = 0; k < 3; ++k) EXPECT_NEAR(eef[3 * t + k], targets.values[t][2 + k].item<double>(), 1e-6);
    }
    if (sites == 2) {  // the second block is the left hand, away from the right one
      const auto right = targets.values.slice(1, 2, 5), left = targets.values.slice(1, 7, 10);
      EXPECT_GT((right - left).norm(2, 1).min().item<double>(), 0.2);
    }
  }
  std::filesystem::remove_all(dir);
}

// Tests a camera on the hand (simcollect --eye-in-hand), whose pose changes every frame: the read-out
// and the probes project with each frame's pose, so the end effector, rigidly attached to it, stays
// at one pixel and one camera-frame position; stage two's camera token sees where it sits on the hand,
// the same at every frame (a rigid mount) and not its pose in the world.
TEST(ReadoutTest, MovingHandCameraProjectsWithEachFramesPose) {
  const auto dir = std::filesystem::temp_directory_path() / ("embody_readout_eye_" + std::to_string(getpid()));
  collect::CollectConfig c;
  c.robot = "franka";
  c.task = "reach";
  c.episodes = 10;
  c.steps = 12;
  c.image_size = 32;
  c.seed = 4;
  c.eye_in_hand = true;
  c.out = (dir / "eye.h5").string();
  collect::Collect(c, {.enabled = false});
  const collect::Dataset ds(c.out);
  const auto targets = EpisodeReadoutTargets(ds, "demo_0", collect::keys::kEyeInHand, 32);
  const auto uv = targets.values.slice(1, 0, 2);
  // (obs/robot0_eef_pos is float32: its rounding moves the point by ~1e-5 px.)
  EXPECT_LT((uv - uv[0]).abs().max().item<double>(), 1e-3) << "the hand's own end effector moved in its camera's image";
  // Projected with one pose for the whole episode (a fixed camera's handling), it would wander.
  const auto poses = ds.CameraPoses("demo_0", collect::keys::kEyeInHand);
  const auto k = ds.Read<double>("demo_0", collect::keys::Intrinsics(collect::keys::kEyeInHand));
  torch::Tensor view;
  const auto fixed = ProjectToImage(targets.values.slice(1, 2, 5), std::vector<double>(poses.begin(), poses.begin() + 16), k, 32, &view);
  EXPECT_GT((fixed - fixed[0]).abs().max().item<double>(), 1.0);
  EXPECT_TRUE(targets.in_view.select(1, 0).all().item<bool>());
  const auto eef = ds.Read<float>("demo_0", collect::keys::kEefPos);
  EXPECT_GT(std::abs(eef[3 * 11] - eef[0]) + std::abs(eef[3 * 11 + 1] - eef[1]) + std::abs(eef[3 * 11 + 2] - eef[2]), 0.01)
      << "the hand did not move";
  // The probes' targets: the end effector in the camera's frame (columns 6..8) is the same at every frame.
  const VideoData data({c.out}, collect::keys::kEyeInHand);
  const ProbeSet set = LoadProbeSet(data, "train", 2, 1);
  for (const auto& t : set.targets) {
    const auto ee_camera = t.slice(1, 6, 9);
    EXPECT_LT((ee_camera - ee_camera[0]).abs().max().item<double>(), 1e-6);
  }
  const auto on_hand = CameraTokenPose(ds, "demo_0", collect::keys::kEyeInHand);
  ASSERT_EQ(on_hand.size(), 16u);
  const auto pos = ds.Read<float>("demo_0", collect::keys::kEefPos), quat = ds.Read<float>("demo_0", collect::keys::kEefQuat);
  double worst = 0, world_moved = 0;
  for (int t = 1; t < 12; ++t) {
    const std::vector<double> pose(poses.begin() + 16 * t, poses.begin() + 16 * (t + 1));
    const auto at_t =
        PoseOnHand(pose, {pos[3 * t], pos[3 * t + 1], pos[3 * t + 2]}, {quat[4 * t], quat[4 * t + 1], quat[4 * t + 2], quat[4 * t + 3]});
    for (int i = 0; i < 16; ++i)
      worst = std::max(worst, std::abs(at_t[i] - on_hand[i])), world_moved = std::max(world_moved, std::abs(pose[i] - poses[i]));
  }
  EXPECT_LT(worst, 1e-5) << "the camera's pose on the hand changed while the hand moved";
  EXPECT_GT(world_moved, 0.01) << "the camera did not move in the world";
  EXPECT_NEAR(on_hand[15], 1.0, 1e-12);
  EXPECT_LT(std::hypot(on_hand[3], on_hand[7], on_hand[11]), 0.3) << "the camera sits on the hand, not metres from it";
  // A fixed camera's token pose is its extrinsics.
  const auto agent_view = CameraTokenPose(ds, "demo_0", "camera0");
  const auto extrinsics = ds.Read<double>("demo_0", collect::keys::Extrinsics("camera0"));
  EXPECT_EQ(agent_view, extrinsics);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace embody::adapt
