// Tests for collect/collector.cc (the collection: layout, determinism, resume, refusals): real
// MuJoCo episodes, real rendering, real HDF5 files. The runner's own tests are in episode_test.cc,
// the reader's checks in dataset_test.cc.
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
#include "tests/collect/collect_fixture.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

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

// Tests --group-actions shared: a group's first episode is the one the default collects, and the
// others replay its actions (recorded as actions_of) on their own layouts, so that the arm starts the
// same motion in each while the objects stand elsewhere; by default the episodes act apart.
TEST_F(CollectorTest, GroupActionsSharedReplayTheFirstEpisodesActions) {
  CollectConfig own = Small("own.h5", 6);
  own.layouts_per_scene = 3;
  CollectConfig shared = own;
  shared.out = dir_ / "shared.h5";
  shared.group_actions = "shared";
  Run(own);
  Run(shared);
  const Dataset a(own.out), d(shared.out);
  EXPECT_NE(a.Read<float>("demo_0", "actions"), a.Read<float>("demo_1", "actions"));
  EXPECT_FALSE(a.HasAttr("demo_1", "actions_of"));
  for (int g = 0; g < 2; ++g) {
    const std::string first = "demo_" + std::to_string(3 * g);
    // The first of a group is the default's episode, array for array.
    EXPECT_EQ(a.Read<float>(first, "actions"), d.Read<float>(first, "actions")) << first;
    EXPECT_EQ(a.Read<double>(first, "states"), d.Read<double>(first, "states")) << first;
    EXPECT_FALSE(d.HasAttr(first, "actions_of"));
    const auto first_ee = d.Read<float>(first, "obs/robot0_eef_pos");
    for (int n = 1; n < 3; ++n) {
      const std::string demo = "demo_" + std::to_string(3 * g + n);
      EXPECT_EQ(3 * g, d.IntAttr(demo, "actions_of"));
      EXPECT_EQ(d.Read<float>(first, "actions"), d.Read<float>(demo, "actions")) << demo;
      EXPECT_EQ(d.StringAttr(first, "task"), d.StringAttr(demo, "task")) << demo;
      EXPECT_NE(d.Read<float>(first, "obs/object"), d.Read<float>(demo, "obs/object")) << demo;
      EXPECT_NE(d.Read<std::uint8_t>(first, "obs/camera1_image"), d.Read<std::uint8_t>(demo, "obs/camera1_image")) << demo;
      // The arm: the same path while it has touched nothing (the first frames: it starts at home).
      const auto ee = d.Read<float>(demo, "obs/robot0_eef_pos");
      for (int i = 0; i < 3 * 3; ++i) EXPECT_NEAR(first_ee[i], ee[i], 1e-6) << demo << " value " << i;
    }
  }
  CollectConfig bad = own;
  bad.layouts_per_scene = 1;
  bad.group_actions = "shared";
  EXPECT_THROW(bad.Validate(), CollectError);
  bad.layouts_per_scene = 2;
  bad.group_actions = "same";
  EXPECT_THROW(bad.Validate(), CollectError);
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

}  // namespace
}  // namespace embody::collect
