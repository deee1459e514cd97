// Tests for adapt/plan/arm_scene.cc: the runner plan and surprise draw their scenes with, and the
// further cameras of a world model of several views.
#include "adapt/plan/arm_scene.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "adapt/core/error.h"

namespace embody::adapt {
namespace {

using ::testing::HasSubstr;

// Tests MakeArmSceneRunner: an arm's runner of one camera at the given size and seed; a humanoid is
// refused, naming the program that needs an arm.
TEST(ArmSceneTest, RunnerIsAnArmsOfOneCamera) {
  setenv("LP_NUM_THREADS", "0", 0);
  const auto light = collect::RandomizationConfig::All(collect::Level::kLight);
  collect::CollectConfig config;
  const auto runner = MakeArmSceneRunner("franka", light, 32, 9, "plan", &config);
  EXPECT_EQ(1, config.cameras);
  EXPECT_EQ(32, config.image_size);
  EXPECT_EQ(9u, config.seed);
  EXPECT_EQ("franka", runner->embodiment().name);
  collect::CollectConfig other;
  try {
    MakeArmSceneRunner("humanoid", light, 32, 9, "surprise", &other);
    FAIL() << "a humanoid scene was made";
  } catch (const AdaptError& e) {
    EXPECT_THAT(e.what(), HasSubstr("surprise works with arms"));
    EXPECT_THAT(e.what(), HasSubstr("humanoid is not an arm"));
  }
}

// Tests AddCameras: one view leaves the draw alone; three views keep the one-camera scene (camera 0
// and everything else) and add the cameras simcollect --cameras 3 places, from their own stream.
TEST(ArmSceneTest, FurtherCamerasLeaveTheSceneAlone) {
  setenv("LP_NUM_THREADS", "0", 0);
  const auto light = collect::RandomizationConfig::All(collect::Level::kLight);
  collect::CollectConfig config;
  const auto runner = MakeArmSceneRunner("franka", light, 32, 9, "plan", &config);
  collect::Rng rng = collect::Rng::ForEpisode(9, 3, 0);
  const collect::Draw one = runner->randomizer().Sample(light, 1, &rng);
  collect::Draw same = one;
  AddCameras(runner->randomizer(), light, 1, collect::Rng::ForEpisode(1, 2, 3), &same);
  EXPECT_EQ(one.ToJson(), same.ToJson());
  collect::Draw three = one;
  AddCameras(runner->randomizer(), light, 3, collect::Rng::ForEpisode(77, 3, 0), &three);
  collect::Rng stream = collect::Rng::ForEpisode(77, 3, 0);
  const collect::Draw placed = runner->randomizer().Sample(light, 3, &stream);
  nlohmann::json a = three.ToJson(), b = one.ToJson(), c = placed.ToJson();
  ASSERT_EQ(3u, a["cameras"].size());
  EXPECT_EQ(b["cameras"][0], a["cameras"][0]);
  EXPECT_EQ(c["cameras"][1], a["cameras"][1]);
  EXPECT_EQ(c["cameras"][2], a["cameras"][2]);
  EXPECT_NE(a["cameras"][1], a["cameras"][2]);
  a.erase("cameras");
  b.erase("cameras");
  EXPECT_EQ(b, a) << "only cameras are added: lights, materials and objects stay the one-camera scene's";
}

}  // namespace
}  // namespace embody::adapt
