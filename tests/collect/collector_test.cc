// Tests for collect/collector.cc, collect/dataset.cc and collect/episode.cc: real MuJoCo episodes,
// real rendering, real HDF5 files.
#include "collect/collector.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmath>
#include <csignal>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/dataset.h"
#include "collect/episode.h"
#include "sim/world.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = fs::temp_directory_path() /
           ("embody_collect_" + std::to_string(getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  CollectConfig Small(const std::string& name, int episodes = 6) const {
    CollectConfig c;
    c.robot = "franka";
    c.episodes = episodes;
    c.steps = 8;
    c.image_size = 32;
    c.cameras = 2;
    c.workers = 2;
    c.seed = 42;
    c.out = (dir_ / name).string();
    return c;
  }
  static CollectSummary Run(const CollectConfig& c) { return Collect(c, {.enabled = false}); }

  fs::path dir_;
};

// Every recorded array and attribute of two datasets' episodes, compared exactly.
void ExpectSameEpisodes(const Dataset& a, const Dataset& b) {
  ASSERT_EQ(a.demos(), b.demos());
  for (const auto& demo : a.demos()) {
    EXPECT_EQ(a.Read<float>(demo, "actions"), b.Read<float>(demo, "actions")) << demo;
    EXPECT_EQ(a.Read<double>(demo, "states"), b.Read<double>(demo, "states")) << demo;
    EXPECT_EQ(a.Read<float>(demo, "obs/object"), b.Read<float>(demo, "obs/object")) << demo;
    EXPECT_EQ(a.Read<std::uint8_t>(demo, "obs/camera1_image"), b.Read<std::uint8_t>(demo, "obs/camera1_image")) << demo;
    EXPECT_EQ(a.StringAttr(demo, "randomization"), b.StringAttr(demo, "randomization")) << demo;
    EXPECT_EQ(a.StringAttr(demo, "task"), b.StringAttr(demo, "task")) << demo;
  }
}

// Tests --layouts-per-scene 2: episodes 2g and 2g+1 share the scene's draw (cameras, lighting,
// materials, dynamics, embodiment) but not the objects' layout, and record their scene_group.
TEST_F(CollectorTest, LayoutsPerSceneShareTheSceneButNotTheObjects) {
  CollectConfig c = Small("twins.h5", 6);
  c.layouts_per_scene = 2;
  Run(c);
  const Dataset d(c.out);
  for (int g = 0; g < 3; ++g) {
    const std::string a = "demo_" + std::to_string(2 * g), b = "demo_" + std::to_string(2 * g + 1);
    EXPECT_EQ(g, d.IntAttr(a, "scene_group"));
    EXPECT_EQ(g, d.IntAttr(b, "scene_group"));
    auto ra = nlohmann::json::parse(d.StringAttr(a, "randomization")), rb = nlohmann::json::parse(d.StringAttr(b, "randomization"));
    EXPECT_NE(ra.at("objects"), rb.at("objects")) << a;
    ra.erase("objects");
    rb.erase("objects");
    EXPECT_EQ(ra, rb) << a;
    EXPECT_EQ(d.Read<double>(a, "camera/camera1/extrinsics"), d.Read<double>(b, "camera/camera1/extrinsics")) << a;
  }
  const auto r0 = nlohmann::json::parse(d.StringAttr("demo_0", "randomization")), r2 = nlohmann::json::parse(d.StringAttr("demo_2", "randomization"));
  EXPECT_NE(r0.at("cameras"), r2.at("cameras"));
  // Without the option no episode has a group.
  const CollectConfig plain = Small("plain.h5", 2);
  Run(plain);
  EXPECT_FALSE(Dataset(plain.out).HasAttr("demo_0", "scene_group"));
}

// Tests --layout-change one: a group's first episode has the group's layout and its n-th moves object
// n - 1 of it, by at least 8 cm, its size and mass kept; everything else is the group's.
TEST_F(CollectorTest, LayoutChangeOneMovesOneObjectAtATime) {
  CollectConfig c = Small("one.h5", 8);
  c.layouts_per_scene = 4;
  c.layout_change = "one";
  Run(c);
  const Dataset d(c.out);
  for (int g = 0; g < 2; ++g) {
    auto base = nlohmann::json::parse(d.StringAttr("demo_" + std::to_string(4 * g), "randomization"));
    const nlohmann::json base_objects = base.at("objects");
    ASSERT_EQ(base_objects.size(), 3u);
    base.erase("objects");
    for (int n = 1; n < 4; ++n) {
      const std::string demo = "demo_" + std::to_string(4 * g + n);
      EXPECT_EQ(g, d.IntAttr(demo, "scene_group"));
      auto r = nlohmann::json::parse(d.StringAttr(demo, "randomization"));
      const nlohmann::json objects = r.at("objects");
      r.erase("objects");
      EXPECT_EQ(r, base) << demo;
      for (int o = 0; o < 3; ++o) {
        const auto &a = base_objects[o], &b = objects[o];
        EXPECT_EQ(a.at("size_scale"), b.at("size_scale")) << demo;
        EXPECT_EQ(a.at("mass_scale"), b.at("mass_scale")) << demo;
        const double moved = std::hypot(a.at("x").get<double>() - b.at("x").get<double>(), a.at("y").get<double>() - b.at("y").get<double>());
        if (o == n - 1) {
          EXPECT_GE(moved, 0.08) << demo << " object " << o;
        } else {
          EXPECT_EQ(a, b) << demo << " object " << o;
        }
      }
    }
  }
}

// Tests the robomimic layout, shapes and attributes of a collected dataset.
TEST_F(CollectorTest, WritesRobomimicLayout) {
  const CollectConfig c = Small("layout.h5", 10);
  const CollectSummary s = Run(c);
  EXPECT_EQ(10, s.episodes_written);
  const Dataset ds(c.out);
  ASSERT_EQ(10u, ds.demos().size());
  EXPECT_EQ("demo_0", ds.demos().front());
  EXPECT_EQ("demo_9", ds.demos().back());
  EXPECT_EQ(80, ds.total());
  EXPECT_EQ(9u, ds.Mask("train").size());
  EXPECT_EQ(std::vector<std::string>{"demo_9"}, ds.Mask("valid"));
  EXPECT_EQ("Embody-franka-mix", ds.env_args()["env_name"]);
  EXPECT_EQ(42, ds.config()["seed"]);
  // The typed readers of the dataset-level attributes give back what the collector wrote.
  EXPECT_EQ(ds.metadata().embodiment, "franka");
  EXPECT_EQ(ds.metadata().action_names.size(), 7u);
  EXPECT_EQ(ds.metadata().joint_names.size(), 7u);
  EXPECT_EQ(ds.control_hz(), 20.0);
  EXPECT_EQ(CollectConfig::FromIdentity(ds.config()).Identity(), ds.config());
  nlohmann::json broken = ds.config();
  broken.erase("steps");
  EXPECT_THROW(CollectConfig::FromIdentity(broken), CollectError);
  nlohmann::json unknown_group = ds.config();
  unknown_group["randomization"]["colour"] = "light";
  EXPECT_THROW(CollectConfig::FromIdentity(unknown_group), CollectError);
  const std::string demo = "demo_3";
  EXPECT_EQ(8, ds.NumSamples(demo));
  std::vector<hsize_t> dims;
  ds.Read<float>(demo, "actions", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 7}), dims);
  const auto actions = ds.Read<float>(demo, "actions");
  for (float a : actions) {
    ASSERT_GE(a, -1.0f);
    ASSERT_LE(a, 1.0f);
  }
  ds.Read<float>(demo, "action_dict/joint_position", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 7}), dims);
  sim::World world = sim::World::FromFile(robots::FindEmbodiment("franka").mjcf);
  ds.Read<double>(demo, "states", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, static_cast<hsize_t>(world.state_size())}), dims);
  ds.ReadFrames(demo, "camera0", 0, 8, &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 32, 32, 3}), dims);
  ds.Read<float>(demo, "obs/robot0_eef_pos", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 3}), dims);
  ds.Read<float>(demo, "obs/robot0_eef_quat", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 4}), dims);
  ds.Read<float>(demo, "obs/robot0_gripper_qpos", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 2}), dims);
  ds.Read<float>(demo, "obs/object", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 21}), dims);
  const auto dones = ds.Read<std::int32_t>(demo, "dones");
  EXPECT_EQ(1, dones.back());
  EXPECT_EQ(0, dones.front());
  ds.Read<double>(demo, "camera/camera1/extrinsics", &dims);
  EXPECT_EQ((std::vector<hsize_t>{4, 4}), dims);
  const auto k = ds.Read<double>(demo, "camera/camera0/intrinsics");
  EXPECT_DOUBLE_EQ(16.0, k[2]);  // cx = width / 2
  EXPECT_EQ("franka", ds.StringAttr(demo, "embodiment"));
  EXPECT_EQ(3, ds.IntAttr(demo, "episode_index"));
  EXPECT_EQ(42, ds.IntAttr(demo, "seed"));
  EXPECT_FALSE(nlohmann::json::parse(ds.StringAttr(demo, "randomization"))["cameras"].empty());
  EXPECT_EQ(7u, nlohmann::json::parse(ds.StringAttr(demo, "action_space"))["names"].size());
}

// Tests that the same seed gives identical episodes with 1 or 2 workers, and when collected as
// two shards and merged.
TEST_F(CollectorTest, DeterministicAcrossWorkersAndShards) {
  CollectConfig one = Small("one.h5");
  one.workers = 1;
  Run(one);
  const CollectConfig two = Small("two.h5");
  Run(two);
  ExpectSameEpisodes(Dataset(one.out), Dataset(two.out));

  std::vector<std::string> shards;
  for (int i = 0; i < 2; ++i) {
    CollectConfig shard = Small("shard" + std::to_string(i) + ".h5");
    shard.shard_index = i;
    shard.shard_count = 2;
    shard.workers = 1;
    Run(shard);
    EXPECT_EQ(3u, Dataset(shard.out).demos().size());
    shards.push_back(shard.out);
  }
  const std::string merged = (dir_ / "merged.h5").string();
  const std::string bin = SIMCOLLECT_BIN;
  ASSERT_EQ(0, std::system((bin + " merge " + merged + " " + shards[0] + " " + shards[1] + " > /dev/null").c_str()));
  ExpectSameEpisodes(Dataset(one.out), Dataset(merged));
  // A different seed gives different data.
  CollectConfig other = Small("other.h5");
  other.seed = 43;
  Run(other);
  EXPECT_NE(Dataset(one.out).Read<float>("demo_0", "actions"), Dataset(other.out).Read<float>("demo_0", "actions"));
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

// Tests the refusals: an existing file, --resume with other options, an unwritable folder.
TEST_F(CollectorTest, RefusesToClobberOrMismatch) {
  CollectConfig c = Small("exists.h5", 2);
  Run(c);
  try {
    Run(c);
    FAIL() << "expected CollectError";
  } catch (const CollectError& e) {
    EXPECT_THAT(e.what(), HasSubstr("already exists; pass --resume to finish it or --overwrite"));
  }
  CollectConfig other = c;
  other.resume = true;
  other.image_size = 48;
  try {
    Run(other);
    FAIL() << "expected CollectError";
  } catch (const CollectError& e) {
    EXPECT_THAT(e.what(), HasSubstr("was made with other options: image_size"));
  }
  EXPECT_EQ(2u, Dataset(c.out).demos().size());  // nothing lost
  CollectConfig overwrite = c;
  overwrite.overwrite = true;
  overwrite.episodes = 1;
  Run(overwrite);
  EXPECT_EQ(1u, Dataset(c.out).demos().size());
  CollectConfig unwritable = Small("x.h5", 1);
  unwritable.out = "/proc/embody/x.h5";
  EXPECT_THROW(Run(unwritable), CollectError);
}

// Tests that humanoid episodes run and record joint-delta actions, one per joint.
TEST_F(CollectorTest, HumanoidEpisodesRun) {
  CollectConfig c = Small("humanoid.h5", 2);
  c.robot = "humanoid";
  c.cameras = 1;
  Run(c);
  const Dataset ds(c.out);
  std::vector<hsize_t> dims;
  ds.Read<float>("demo_1", "actions", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 24}), dims);
  EXPECT_FALSE(ds.HasDataset("demo_1", "obs/robot0_gripper_qpos"));
  EXPECT_EQ("humanoid", ds.StringAttr("demo_1", "embodiment"));
  // Both hands, in the order the attribute names them; the first is robot0_eef_pos's site.
  EXPECT_EQ(R"(["humanoid_right_hand","humanoid_left_hand"])", ds.StringAttr("demo_1", "sites"));
  const auto sites = ds.Read<float>("demo_1", "obs/robot0_sites_pos", &dims);
  EXPECT_EQ((std::vector<hsize_t>{8, 6}), dims);
  const auto eef = ds.Read<float>("demo_1", "obs/robot0_eef_pos");
  double apart = 0;
  for (size_t t = 0; t < 8; ++t) {
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(eef[3 * t + k], sites[6 * t + k]);
    apart += std::hypot(sites[6 * t] - sites[6 * t + 3], sites[6 * t + 1] - sites[6 * t + 4], sites[6 * t + 2] - sites[6 * t + 5]);
  }
  EXPECT_GT(apart / 8, 0.2);  // the hands are shoulder-width apart or more
  EXPECT_TRUE(ds.HasDataset("demo_1", "next_obs/robot0_sites_pos"));
  // An arm has one site: no sites_pos.
  CollectConfig arm = Small("arm_sites.h5", 1);
  Run(arm);
  EXPECT_FALSE(Dataset(arm.out).HasDataset("demo_0", "obs/robot0_sites_pos"));
}

// Tests crash safety with a real SIGKILL: the file still opens and every episode it lists is
// complete; --resume then finishes the job and equals an uninterrupted run episode for episode.
TEST_F(CollectorTest, KillAndResumeEqualsUninterrupted) {
  CollectConfig c = Small("killed.h5", 12);
  c.steps = 20;
  c.workers = 1;
  const fs::path parts = PartsDir(c.out);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    execl(SIMCOLLECT_BIN, SIMCOLLECT_BIN, "--robot", "franka", "--episodes", "12", "--steps", "20", "--image-size", "32", "--cameras", "2",
          "--workers", "1", "--seed", "42", "--out", c.out.c_str(), nullptr);
    _exit(127);
  }
  // Kill it once three episodes are on disk: mid-way through later ones.
  auto finished = [&] {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(parts, ec)) n += e.path().extension() == ".h5";
    return n;
  };
  for (int i = 0; i < 600 && finished() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(37));
  ASSERT_EQ(0, kill(pid, SIGKILL));
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "simcollect finished before it could be killed";
  {
    const Dataset killed(c.out);
    EXPECT_GE(killed.demos().size(), 1u);
    EXPECT_LT(killed.demos().size(), 12u);
    for (const auto& demo : killed.demos()) EXPECT_EQ(20u, killed.Read<float>(demo, "actions").size() / 7) << demo;
  }
  c.resume = true;
  const CollectSummary resumed = Run(c);
  EXPECT_LT(resumed.episodes_written, 12);
  EXPECT_EQ(12, resumed.episodes_total);

  CollectConfig straight = Small("straight.h5", 12);
  straight.steps = 20;
  Run(straight);
  ExpectSameEpisodes(Dataset(straight.out), Dataset(c.out));
}

// Tests that a truncated or foreign file is a clear error for the reader, info and merge.
TEST_F(CollectorTest, CorruptInputsFailClearly) {
  const fs::path junk = dir_ / "junk.h5";
  std::ofstream(junk) << "this is not HDF5";
  try {
    Dataset ds(junk);
    FAIL() << "expected DatasetError";
  } catch (const DatasetError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a readable HDF5 file"));
  }
  const std::string bin = SIMCOLLECT_BIN;
  EXPECT_NE(0, std::system((bin + " info " + junk.string() + " 2> /dev/null").c_str()));
  const std::string merged = (dir_ / "m.h5").string();
  EXPECT_NE(0, std::system((bin + " merge " + merged + " " + junk.string() + " 2> /dev/null").c_str()));
  EXPECT_FALSE(fs::exists(merged));
  EXPECT_THROW(Dataset(dir_ / "missing.h5"), DatasetError);
}

}  // namespace
}  // namespace embody::collect

namespace embody::collect {
namespace {

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
