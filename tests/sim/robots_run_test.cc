// Tests that every built-in robot runs from home under small random targets without warnings or NaN.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/world.h"

namespace embody::sim {
namespace {

class RobotRunTest : public ::testing::TestWithParam<std::string> {};

// Tests that 2000 control steps (a new small random action each step) raise no MuJoCo warning,
// keep the state finite, and actually move the robot.
TEST_P(RobotRunTest, RunsFromHomeWithoutWarnings) {
  const robots::Embodiment e = robots::FindEmbodiment(GetParam());
  World world = World::FromFile(e.mjcf);
  const RobotController controller(world.model(), e);
  controller.ResetToHome(&world);
  const int substeps = PhysicsStepsPerControl(e, world.model());
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> uniform(-0.2, 0.2);
  double travelled = 0;
  for (int step = 0; step < 2000; ++step) {
    std::vector<double> action(e.action_dim());
    for (double& a : action) a = uniform(rng);
    const auto before = controller.JointPositions(world.data());
    controller.ApplyAction(world.model(), world.mutable_data(), action);
    ASSERT_NO_THROW(world.Step(substeps)) << GetParam() << " at control step " << step;
    const auto after = controller.JointPositions(world.data());
    for (size_t i = 0; i < after.size(); ++i) travelled += std::abs(after[i] - before[i]);
  }
  for (int i = 0; i < world.model()->nq; ++i) ASSERT_TRUE(std::isfinite(world.data()->qpos[i]));
  EXPECT_GT(travelled, 1.0);
}

INSTANTIATE_TEST_SUITE_P(Builtins, RobotRunTest, ::testing::Values("franka", "ur5", "humanoid"));

}  // namespace
}  // namespace embody::sim
