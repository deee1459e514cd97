// Tests for collect/episode.cc (EpisodeRunner): the one scene drawer, replaying stored states, the
// eye-in-hand camera, unstable draws redrawn. Real MuJoCo, real rendering, real HDF5 files.
#include "collect/episode.h"

#include <cmath>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/dataset.h"
#include "sim/world.h"
#include "tests/collect/collect_fixture.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;

// Tests DrawScene, the one place scenes are drawn: a collected episode starts from exactly the
// scene DrawScene draws from the episode's stream (its state, its recorded draw), the same stream
// gives the same scene, and an edit (here a turned camera) is applied before the scene settles.
TEST_F(CollectorTest, EpisodesStartFromTheDrawnScene) {
  const CollectConfig c = Small("drawn.h5", 2);
  Run(c);
  const Dataset ds(c.out);
  EpisodeRunner runner(c);
  for (int i = 0; i < 2; ++i) {
    const std::string demo = "demo_" + std::to_string(i);
    Rng rng = Rng::ForEpisode(c.seed, i, ds.IntAttr(demo, "attempts") - 1);
    const Draw draw = runner.DrawScene(c.cameras, &rng);
    EXPECT_EQ(draw.ToJson(), nlohmann::json::parse(ds.StringAttr(demo, "randomization"))) << demo;
    std::vector<hsize_t> dims;
    const auto states = ds.Read<double>(demo, "states", &dims);
    const auto now = runner.world().GetState();
    ASSERT_EQ(now.size(), dims[1]);
    EXPECT_TRUE(std::equal(now.begin(), now.end(), states.begin())) << demo << ": the episode's first state is the settled scene";
  }
  Rng a = Rng::ForEpisode(7, 0, 0), b = Rng::ForEpisode(7, 0, 0);
  const Draw first = runner.DrawScene(1, &a);
  const Draw turned = runner.DrawScene(1, &b, [](Draw* d) { d->cameras[0].position[1] += 0.1; });
  EXPECT_NEAR(turned.cameras[0].position[1], first.cameras[0].position[1] + 0.1, 1e-12);
  EXPECT_EQ(turned.ToJson(), runner.draw().ToJson()) << "the edited draw is the one applied";
}

// Tests that replaying stored states through MuJoCo, with the stored randomization, reproduces the
// stored frames bit for bit.
TEST_F(CollectorTest, ReplayingStatesReproducesFrames) {
  const CollectConfig c = Small("replay.h5", 2);
  Run(c);
  const Dataset ds(c.out);
  EpisodeRunner runner(c);
  for (const auto& demo : ds.demos()) {
    runner.Prepare(Draw::FromJson(nlohmann::json::parse(ds.StringAttr(demo, "randomization"))));
    std::vector<hsize_t> dims;
    const auto states = ds.Read<double>(demo, "states", &dims);
    const Draw draw = Draw::FromJson(nlohmann::json::parse(ds.StringAttr(demo, "randomization")));
    for (hsize_t t = 0; t < dims[0]; ++t) {
      runner.world().SetState(states.data() + t * dims[1], static_cast<int>(dims[1]));
      sim::Image image;
      runner.renderer()->Render(runner.world().data(), draw.cameras[1], &image);
      EXPECT_EQ(ds.ReadFrames(demo, "camera1", t, 1), image.rgb) << demo << " frame " << t;
    }
    // A strided read (what training clips use) returns exactly frames first, first + stride, ...
    const auto strided = ds.ReadFrames(demo, "camera1", 1, 3, nullptr, 3);  // frames 1, 4, 7 of 8
    const auto one = ds.ReadFrames(demo, "camera1", 0, 1);
    ASSERT_EQ(3 * one.size(), strided.size());
    for (int i = 0; i < 3; ++i) {
      const auto frame = ds.ReadFrames(demo, "camera1", 1 + 3 * i, 1);
      EXPECT_TRUE(std::equal(frame.begin(), frame.end(), strided.begin() + i * one.size())) << demo << " strided frame " << i;
    }
    EXPECT_THROW(ds.ReadFrames(demo, "camera1", 2, 3, nullptr, 3), DatasetError);  // frame 8 of 0..7
  }
}

// Tests the eye-in-hand camera (--eye-in-hand): it is rigidly mounted on the hand (its pose in the
// end effector's frame is the same at every recorded frame, while its world pose follows the hand),
// its frames change when the hand moves, a recorded frame re-renders from the state, and the
// option is part of the data's identity.
TEST_F(CollectorTest, EyeInHandCameraMovesWithTheHand) {
  CollectConfig c = Small("eye.h5", 2);
  c.cameras = 1;
  c.steps = 20;
  c.task = "reach";
  c.eye_in_hand = true;
  Run(c);
  const Dataset ds(c.out);
  EpisodeRunner runner(c);
  const int ee = mj_name2id(runner.world().model(), mjOBJ_SITE, runner.embodiment().ee_site.c_str());
  ASSERT_GE(ee, 0);
  for (const auto& demo : ds.demos()) {
    ASSERT_TRUE(ds.CameraMoves(demo, keys::kEyeInHand));
    EXPECT_FALSE(ds.CameraMoves(demo, "camera0"));
    const auto poses = ds.CameraPoses(demo, keys::kEyeInHand);
    ASSERT_EQ(poses.size(), 20u * 16);
    EXPECT_EQ(ds.CameraPoses(demo, "camera0").size(), 20u * 16);  // a fixed view's pose, repeated
    std::vector<hsize_t> dims;
    const auto states = ds.Read<double>(demo, keys::kStates, &dims);
    runner.Prepare(Draw::FromJson(nlohmann::json::parse(ds.StringAttr(demo, "randomization"))));
    double moved = 0, first_offset[3] = {0, 0, 0};
    for (hsize_t t = 0; t < dims[0]; ++t) {
      runner.world().SetState(states.data() + t * dims[1], static_cast<int>(dims[1]));
      const mjData* d = runner.world().data();
      const double* pose = poses.data() + 16 * t;  // camera-to-world, row-major
      // The camera's position in the end effector's frame: R_ee^T (p_cam - p_ee).
      double offset[3] = {0, 0, 0};
      for (int i = 0; i < 3; ++i) {
        for (int k = 0; k < 3; ++k) offset[i] += d->site_xmat[9 * ee + 3 * k + i] * (pose[4 * k + 3] - d->site_xpos[3 * ee + k]);
      }
      for (int i = 0; i < 3; ++i) {
        if (t == 0) first_offset[i] = offset[i];
        EXPECT_NEAR(first_offset[i], offset[i], 1e-6) << demo << " frame " << t << ": the mount is not rigid";
        moved = std::max(moved, std::abs(pose[4 * i + 3] - poses[4 * i + 3]));
      }
      sim::Image image;
      runner.renderer()->Render(d, sim::Camera::Named(runner.embodiment().eye_in_hand_camera), &image);
      EXPECT_EQ(ds.ReadFrames(demo, keys::kEyeInHand, t, 1), image.rgb) << demo << " frame " << t;
    }
    EXPECT_GT(moved, 0.02) << demo << ": the hand (and its camera) should move while reaching";
    EXPECT_NE(ds.ReadFrames(demo, keys::kEyeInHand, 0, 1), ds.ReadFrames(demo, keys::kEyeInHand, dims[0] - 1, 1)) << demo;
  }
  EXPECT_EQ(ds.config()["eye_in_hand"], true);
  EXPECT_FALSE(Small("x.h5").Identity().contains("eye_in_hand"));  // datasets without it keep their identity
}

// A two-joint arm whose position servos sit near the Euler stability limit (dt * sqrt(kp / I) ~ 1.9
// with kp = 9000, I ~ 0.01, no damping): draws that scale the gains up blow up within a few steps.
constexpr char kTippyArm[] = R"(
<mujoco model="tippy">
  <option timestep="0.002" integrator="Euler"/>
  <worldbody>
    <body name="base" pos="0 0 0.5">
      <body name="link1">
        <joint name="j1" axis="0 0 1" limited="true" range="-3 3" armature="0.01"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02" mass="0.001" contype="2" conaffinity="1"/>
        <body name="link2" pos="0.3 0 0">
          <joint name="j2" axis="0 1 0" limited="true" range="-3 3" armature="0.01"/>
          <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02" mass="0.001" contype="2" conaffinity="1"/>
          <site name="tip" pos="0.3 0 0"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position joint="j1" kp="9000" ctrllimited="true" ctrlrange="-3 3"/>
    <position joint="j2" kp="9000" ctrllimited="true" ctrlrange="-3 3"/>
  </actuator>
</mujoco>)";

// Tests that episodes that go unstable are discarded and redrawn, counted, and that no NaN reaches
// the file.
TEST_F(CollectorTest, UnstableEpisodesAreRedrawn) {
  std::ofstream(dir_ / "tippy.xml") << kTippyArm;
  std::ofstream(dir_ / "tippy.json") << R"({"name": "tippy", "kind": "arm", "mjcf": "tippy.xml", "base_body": "base",
    "joints": ["j1", "j2"], "ee_site": "tip", "home": [0.3, 0.4], "gravity_compensation": false})";
  CollectConfig c = Small("tippy.h5", 8);
  c.robot = (dir_ / "tippy.json").string();
  c.task = "reach";
  c.cameras = 1;
  c.randomization = RandomizationConfig::All(Level::kNone);
  c.randomization.dynamics = Level::kWide;  // gain scales in [0.75, 1.25]
  const CollectSummary s = Run(c);
  EXPECT_GT(s.redraws, 0);
  EXPECT_EQ(8, s.episodes_written);
  const Dataset ds(c.out);
  std::int64_t attempts = 0;
  for (const auto& demo : ds.demos()) {
    attempts += ds.IntAttr(demo, "attempts") - 1;
    for (double v : ds.Read<double>(demo, "states")) ASSERT_TRUE(std::isfinite(v)) << demo;
    for (float v : ds.Read<float>(demo, "obs/robot0_joint_vel")) ASSERT_TRUE(std::isfinite(v)) << demo;
  }
  EXPECT_EQ(s.redraws, attempts);
}

}  // namespace
}  // namespace embody::collect
