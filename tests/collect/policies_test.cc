// Tests for collect/policies.cc: every scripted task, on every robot, reaches its goal on most
// episodes (noise and off-expert excursions included). The rates are printed for the record.
#include "collect/policies.h"

#include <cstdio>

#include <gtest/gtest.h>

#include "collect/episode.h"

namespace embody::collect {
namespace {

struct Case {
  std::string robot, task;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.robot << "/" << c.task; }

class PolicySuccessTest : public ::testing::TestWithParam<Case> {};

// Tests that the task's goal is reached in at least half of 12 seeded episodes of 60 steps.
TEST_P(PolicySuccessTest, SucceedsOnMostEpisodes) {
  CollectConfig c;
  c.robot = GetParam().robot;
  c.task = GetParam().task;
  c.steps = 60;
  c.seed = 5;
  EpisodeRunner runner(c, /*render=*/false);
  const int episodes = 12;
  int successes = 0;
  for (int i = 0; i < episodes; ++i) successes += runner.Run(i).success ? 1 : 0;
  std::printf("success rate %s/%s: %d/%d\n", c.robot.c_str(), c.task.c_str(), successes, episodes);
  RecordProperty("successes", successes);
  EXPECT_GE(2 * successes, episodes) << c.robot << "/" << c.task;
}

INSTANTIATE_TEST_SUITE_P(Tasks, PolicySuccessTest,
                         ::testing::Values(Case{"franka", "reach"}, Case{"franka", "push"}, Case{"franka", "pick"}, Case{"franka", "wander"},
                                           Case{"ur5", "reach"}, Case{"ur5", "push"}, Case{"ur5", "pick"}, Case{"ur5", "wander"},
                                           Case{"humanoid", "reach"}, Case{"humanoid", "squat"}, Case{"humanoid", "turn"}, Case{"humanoid", "wave"},
                                           Case{"humanoid", "wander"}),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.robot + "_" + info.param.task; });

// Tests that tasks a robot cannot do are refused with the list of those it can.
TEST(PolicyTest, UnsupportedTaskIsNamed) {
  try {
    TasksFor(robots::FindEmbodiment("humanoid"), "pick");
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("reach|squat|turn|wave|wander|mix"));
  }
  EXPECT_EQ(4u, TasksFor(robots::FindEmbodiment("ur5"), "mix").size());
}

}  // namespace
}  // namespace embody::collect
