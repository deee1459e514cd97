// Tests for sim/controller.cc: the end-effector delta controller in closed loop on real robots.
#include "sim/controller.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "sim/world.h"

namespace embody::sim {
namespace {

double Norm(const std::array<double, 3>& v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

std::array<double, 3> Clamped(std::array<double, 3> v, double max_norm) {
  const double n = Norm(v);
  if (n > max_norm) {
    for (double& x : v) x *= max_norm / n;
  }
  return v;
}

// Drives the ee-delta controller toward 20 targets that are reachable by construction (the pose of a
// random joint configuration near home, kept above the table) and checks it arrives within 1 cm.
void ExpectReachesTargets(const std::string& robot) {
  const robots::Embodiment e = robots::FindEmbodiment(robot);
  World world = World::FromFile(e.mjcf);
  const RobotController controller(world.model(), e);
  const mjModel* m = world.model();
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> perturb(-0.5, 0.5);
  int reached = 0, trials = 0;
  double worst = 0;
  while (trials < 20) {
    // A target pose from a random configuration.
    world.Reset();
    std::vector<double> q = e.home;
    for (double& x : q) x += perturb(rng);
    controller.ResetToHome(&world);
    for (int i = 0; i < controller.num_joints(); ++i) {
      world.mutable_data()->qpos[m->jnt_qposadr[RequireId(m, mjOBJ_JOINT, e.joints[i])]] = q[i];
    }
    world.Forward();
    const SitePose target = GetSitePose(world.data(), controller.ee_site());
    if (target.pos[2] < 0.55) continue;  // stay clear of the table top (z = 0.4) and the objects
    ++trials;

    world.Reset();
    controller.ResetToHome(&world);
    double error = 1e9;
    for (int step = 0; step < 150 && error > 0.002; ++step) {
      const SitePose now = GetSitePose(world.data(), controller.ee_site());
      const std::array<double, 3> dpos = {target.pos[0] - now.pos[0], target.pos[1] - now.pos[1], target.pos[2] - now.pos[2]};
      controller.ApplyEeDelta(m, world.mutable_data(), Clamped(dpos, 0.05), Clamped(OrientationError(target.quat, now.quat), 0.25));
      world.Step(PhysicsStepsPerControl(e, m));
      const SitePose after = GetSitePose(world.data(), controller.ee_site());
      error = Norm({target.pos[0] - after.pos[0], target.pos[1] - after.pos[1], target.pos[2] - after.pos[2]});
    }
    worst = std::max(worst, error);
    if (error < 0.01) ++reached;
  }
  EXPECT_EQ(20, reached) << robot << ": worst final error " << worst << " m";
}

// Tests that the franka end effector reaches 20 random reachable targets within 1 cm.
TEST(ControllerTest, FrankaReachesTargets) { ExpectReachesTargets("franka"); }

// Tests that the ur5 end effector reaches 20 random reachable targets within 1 cm.
TEST(ControllerTest, Ur5ReachesTargets) { ExpectReachesTargets("ur5"); }

// Tests that joint targets never leave the joint limits, however large the commanded motion.
TEST(ControllerTest, TargetsRespectJointLimits) {
  const robots::Embodiment e = robots::FindEmbodiment("franka");
  World world = World::FromFile(e.mjcf);
  const RobotController controller(world.model(), e);
  controller.ResetToHome(&world);
  const mjModel* m = world.model();
  for (int step = 0; step < 40; ++step) {
    controller.ApplyEeDelta(m, world.mutable_data(), {0.0, 0.0, 5.0}, {3.0, 0.0, 0.0});
    world.Step(PhysicsStepsPerControl(e, m));
    for (int i = 0; i < controller.num_joints(); ++i) {
      const int j = RequireId(m, mjOBJ_JOINT, e.joints[i]);
      const double target = controller.JointTargets(world.data())[i];
      EXPECT_GE(target, m->jnt_range[2 * j]) << e.joints[i];
      EXPECT_LE(target, m->jnt_range[2 * j + 1]) << e.joints[i];
    }
  }
}

// Tests that the gripper closes and opens on command.
TEST(ControllerTest, GripperClosesAndOpens) {
  const robots::Embodiment e = robots::FindEmbodiment("ur5");
  World world = World::FromFile(e.mjcf);
  const RobotController controller(world.model(), e);
  controller.ResetToHome(&world);
  EXPECT_NEAR(0.0, controller.GripperClosedFraction(world.data()), 0.02);
  controller.SetGripper(world.mutable_data(), 1.0);
  world.Step(300);
  EXPECT_GT(controller.GripperClosedFraction(world.data()), 0.95);
  controller.SetGripper(world.mutable_data(), 0.0);
  world.Step(300);
  EXPECT_LT(controller.GripperClosedFraction(world.data()), 0.05);
}

// Tests that a normalized humanoid action moves each joint target by action * scale.
TEST(ControllerTest, HumanoidActionIsScaledJointDelta) {
  const robots::Embodiment e = robots::FindEmbodiment("humanoid");
  World world = World::FromFile(e.mjcf);
  const RobotController controller(world.model(), e);
  controller.ResetToHome(&world);
  const std::vector<double> before = controller.JointTargets(world.data());
  std::vector<double> action(e.action_dim(), 0.0);
  action[1] = 0.5;   // abdomen_y
  action[15] = 2.0;  // right_knee, clamped to 1
  controller.ApplyAction(world.model(), world.mutable_data(), action);
  const std::vector<double> after = controller.JointTargets(world.data());
  EXPECT_NEAR(before[1] + 0.5 * e.action_scale.joint, after[1], 1e-12);
  EXPECT_NEAR(before[15] + 1.0 * e.action_scale.joint, after[15], 1e-12);
  EXPECT_DOUBLE_EQ(before[0], after[0]);
}

// Tests that an embodiment naming a joint the model lacks fails with the joint's name.
TEST(ControllerTest, MissingJointIsNamed) {
  robots::Embodiment e = robots::FindEmbodiment("franka");
  e.joints[3] = "franka_joint_typo";
  World world = World::FromFile(e.mjcf);
  try {
    RobotController controller(world.model(), e);
    FAIL() << "expected SimError";
  } catch (const SimError& err) {
    EXPECT_NE(std::string::npos, std::string(err.what()).find("franka_joint_typo"));
  }
}

}  // namespace
}  // namespace embody::sim
