// Tests for sim/world.cc.
#include "sim/world.h"

#include <cmath>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace embody::sim {
namespace {

using ::testing::HasSubstr;

// A hinge pendulum driven by a position actuator, and a free ball that bounces on the floor.
constexpr char kPendulum[] = R"(
<mujoco>
  <option timestep="0.002"/>
  <worldbody>
    <geom type="plane" size="2 2 0.1"/>
    <body name="arm" pos="0 0 1">
      <joint name="hinge" axis="0 1 0" damping="0.1"/>
      <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.03" mass="1"/>
    </body>
    <body name="ball" pos="0.3 0.3 0.5">
      <freejoint/>
      <geom type="sphere" size="0.05" mass="0.2"/>
    </body>
  </worldbody>
  <actuator><position name="servo" joint="hinge" kp="5"/></actuator>
</mujoco>)";

// Tests that a model loads from a string and that stepping advances time.
TEST(WorldTest, LoadsFromStringAndSteps) {
  World world = World::FromString(kPendulum);
  EXPECT_EQ(8, world.model()->nq);
  world.Step(10);
  EXPECT_NEAR(0.02, world.data()->time, 1e-12);
}

// Tests that restoring a saved state replays the following steps exactly, bit for bit.
TEST(WorldTest, StateRoundTripReplaysExactly) {
  World world = World::FromString(kPendulum);
  world.mutable_data()->ctrl[0] = 0.7;
  world.Step(50);
  const std::vector<double> saved = world.GetState();
  EXPECT_EQ(world.state_size(), static_cast<int>(saved.size()));
  world.Step(200);
  const std::vector<double> first = world.GetState();

  world.mutable_data()->ctrl[0] = -3;  // disturb, then restore
  world.Step(7);
  world.SetState(saved);
  EXPECT_EQ(saved, world.GetState());
  world.Step(200);
  EXPECT_EQ(first, world.GetState());
  EXPECT_NE(saved, first);
}

// Tests that a state of the wrong size is refused with a message giving both sizes.
TEST(WorldTest, WrongStateSizeIsRefused) {
  World world = World::FromString(kPendulum);
  try {
    world.SetState(std::vector<double>(3, 0.0));
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_THAT(e.what(), HasSubstr("state has 3 values"));
  }
}

// Tests that gravity compensation holds an unactuated arm still while without it the arm falls.
TEST(WorldTest, GravityCompensationHoldsTheArm) {
  World held = World::FromString(kPendulum);
  World fallen = World::FromString(kPendulum);
  const int dof = held.model()->jnt_dofadr[RequireId(held.model(), mjOBJ_JOINT, "hinge")];
  held.mutable_model()->actuator_gainprm[0] = 0;  // no servo: only gravity acts on the hinge
  held.mutable_model()->actuator_biasprm[1] = 0;
  fallen.mutable_model()->actuator_gainprm[0] = 0;
  fallen.mutable_model()->actuator_biasprm[1] = 0;
  held.SetGravityCompensation({dof});
  held.Step(500);
  fallen.Step(500);
  EXPECT_NEAR(0.0, held.data()->qpos[0], 1e-6);
  EXPECT_GT(std::abs(fallen.data()->qpos[0]), 0.5);
}

// Tests that a clone is independent of the original and starts from the same state.
TEST(WorldTest, CloneIsIndependent) {
  World world = World::FromString(kPendulum);
  world.Step(20);
  World copy = world.Clone();
  EXPECT_EQ(world.GetState(), copy.GetState());
  copy.Step(20);
  EXPECT_NE(world.GetState(), copy.GetState());
  EXPECT_NE(world.model(), copy.model());
}

// Tests that a MuJoCo warning (here: NaN in qpos) surfaces as UnstableError instead of being ignored.
TEST(WorldTest, WarningsSurfaceAsUnstableError) {
  World world = World::FromString(kPendulum);
  world.mutable_data()->qpos[0] = std::nan("");
  try {
    world.Step();
    FAIL() << "expected UnstableError";
  } catch (const UnstableError& e) {
    EXPECT_THAT(e.what(), HasSubstr("QPOS"));
  }
}

// Tests that bad MJCF text names the source, the line and MuJoCo's message.
TEST(WorldTest, BadMjcfNamesLineAndMessage) {
  const char* bad = "<mujoco>\n  <worldbody>\n    <bogus/>\n  </worldbody>\n</mujoco>\n";
  try {
    LoadModelString(bad, "inline.xml");
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_THAT(e.what(), HasSubstr("inline.xml:3:"));
    EXPECT_THAT(e.what(), HasSubstr("bogus"));
  }
}

// Tests that a bad MJCF file and a missing file give errors that name the file.
TEST(WorldTest, BadAndMissingFilesNameTheFile) {
  const auto path = std::filesystem::temp_directory_path() / "embody_bad_model.xml";
  std::ofstream(path) << "<mujoco>\n<worldbody>\n<body><geom type=\"sphere\" size=\"-1\"/></body>\n"
                         "</worldbody>\n</mujoco>\n";
  try {
    World::FromFile(path);
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path.string() + ":"));
  }
  std::filesystem::remove(path);
  try {
    World::FromFile("/nonexistent/robot.xml");
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/robot.xml: no such MJCF file"));
  }
}

// Tests that a name the model lacks is reported with its type and name.
TEST(WorldTest, RequireIdNamesMissingElement) {
  World world = World::FromString(kPendulum);
  EXPECT_EQ(0, RequireId(world.model(), mjOBJ_JOINT, "hinge"));
  try {
    RequireId(world.model(), mjOBJ_SITE, "gripper_tip");
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no site named \"gripper_tip\""));
  }
}

}  // namespace
}  // namespace embody::sim
