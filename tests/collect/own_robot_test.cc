// A user's own robot (docs/robots.md, "Bring your own robot"): third-party-style MJCF written here, refused
// with one clear message per problem and nothing left behind, and one accepted robot (the humanoid
// with its joints renamed, mapped through "roles") that collects moving, successful episodes.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/collector.h"
#include "collect/dataset.h"
#include "collect/episode.h"
#include "robots/embodiment.h"
#include "sim/world.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class OwnRobotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("LP_NUM_THREADS", "0", 0);
    dir_ = fs::temp_directory_path() /
           ("embody_own_robot_" + std::to_string(getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  // Collects with `robot`; returns the error message ("" on success).
  std::string CollectError(const fs::path& robot, const std::string& task = "mix", int episodes = 2, int steps = 30) const {
    CollectConfig c;
    c.robot = robot.string();
    c.task = task;
    c.episodes = episodes;
    c.steps = steps;
    c.image_size = 32;
    c.seed = 4;
    c.out = (dir_ / "out.h5").string();
    try {
      Collect(c, {.enabled = false});
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }
  bool LeftOutput() const { return fs::exists(dir_ / "out.h5") || fs::exists(dir_ / "out.h5.parts"); }

  fs::path dir_;
};

// A one-link arm, its joint driven by `actuator` (an MJCF element), its base floating if `free`.
std::string OneLinkArm(const std::string& actuator, bool free) {
  return std::string(R"(<mujoco><worldbody><body name="base" pos="0 0 0.5">)") + (free ? "<freejoint/>" : "") +
         R"(<geom type="box" size="0.05 0.05 0.05" mass="1"/>
      <body name="link"><joint name="j1" type="hinge" axis="0 0 1"/><geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02" mass="0.5"/>
        <site name="tip" pos="0.3 0 0"/></body></body></worldbody><actuator>)" +
         actuator + "</actuator></mujoco>";
}
const char* kArmDescriptor = R"({"name": "one_link", "kind": "arm", "mjcf": "arm.xml", "base_body": "base",
  "joints": ["j1"], "ee_site": "tip", "home": [0]})";

TEST_F(OwnRobotTest, TorqueMotorsAreRefusedNamingTheJointAndTheFix) {
  Write("arm.xml", OneLinkArm(R"(<motor name="m1" joint="j1"/>)", false));
  const auto robot = Write("arm.json", kArmDescriptor);
  const std::string error = CollectError(robot);
  EXPECT_THAT(error, HasSubstr("joint \"j1\" is driven by actuator \"m1\", which is not a position servo"));
  EXPECT_THAT(error, HasSubstr("<position joint=\"j1\""));
  EXPECT_FALSE(LeftOutput());
  // The same joint with a position servo is accepted by the controller.
  Write("arm.xml", OneLinkArm(R"(<position name="p1" joint="j1" kp="50"/>)", false));
  CollectConfig c;
  c.robot = robot.string();
  EXPECT_NO_THROW(EpisodeRunner(c, false));
}

// sim-demo renders a robot whose scene has no cameras (two framing it), and a refused robot leaves no
// output folder behind.
TEST_F(OwnRobotTest, SimDemoFramesARobotWithoutCamerasAndLeavesNothingOnError) {
  Write("arm.xml", OneLinkArm(R"(<position name="p1" joint="j1" kp="50"/>)", false));
  const auto robot = Write("arm.json", kArmDescriptor);
  const std::string run = std::string(SIM_DEMO_BIN) + " --robots " + robot.string() + " --steps 4 --frames 1 --image-size 32 --out ";
  ASSERT_EQ(std::system((run + (dir_ / "frames").string() + " > /dev/null").c_str()), 0);
  EXPECT_TRUE(fs::exists(dir_ / "frames/one_link_front_0.png"));
  EXPECT_TRUE(fs::exists(dir_ / "frames/one_link_side_0.png"));
  Write("arm.xml", OneLinkArm(R"(<motor name="m1" joint="j1"/>)", false));
  EXPECT_NE(std::system((run + (dir_ / "bad").string() + " > /dev/null 2>&1").c_str()), 0);
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(OwnRobotTest, FloatingBaseIsRefused) {
  Write("arm.xml", OneLinkArm(R"(<position name="p1" joint="j1" kp="50"/>)", true));
  const std::string error = CollectError(Write("arm.json", kArmDescriptor));
  EXPECT_THAT(error, HasSubstr("the robot's base \"base\" floats"));
  EXPECT_THAT(error, HasSubstr("<freejoint>"));
  EXPECT_FALSE(LeftOutput());
}

// The built-in humanoid's MJCF with every joint renamed ("right_elbow" -> "rt_elbow_pitch" style):
// what a humanoid from elsewhere looks like to Embody.
class ForeignHumanoidTest : public OwnRobotTest {
 protected:
  void SetUp() override {
    OwnRobotTest::SetUp();
    const fs::path assets = robots::AssetsDir();
    for (const char* f : {"humanoid_room.xml", "room.xml"}) fs::copy_file(assets / f, dir_ / f);
    std::stringstream text;
    text << std::ifstream(assets / "humanoid.xml").rdbuf();
    std::string xml = text.str();
    const robots::Embodiment builtin = robots::FindEmbodiment("humanoid");
    for (const auto& joint : builtin.joints) {
      // Joint names appear as name="j" and joint="j"; rename both.
      for (const std::string attr : {"name=\"", "joint=\""}) {
        for (size_t at = 0; (at = xml.find(attr + joint + "\"", at)) != std::string::npos;)
          xml.replace(at, attr.size() + joint.size(), attr + "x_" + joint);
      }
      renamed_.push_back("x_" + joint);
    }
    std::ofstream(dir_ / "humanoid.xml") << xml;
    std::string joints, home;
    for (size_t i = 0; i < renamed_.size(); ++i) {
      joints += (i ? ", \"" : "\"") + renamed_[i] + "\"";
      home += (i ? ", " : "") + std::to_string(builtin.home[i]);
    }
    descriptor_ = R"({"name": "foreign", "kind": "humanoid", "mjcf": "humanoid_room.xml", "base_body": "humanoid_pelvis",
      "ee_sites": ["humanoid_right_hand", "humanoid_left_hand"], "joints": [)" +
                  joints + "], \"home\": [" + home + "]";
  }
  std::string descriptor_;
  std::vector<std::string> renamed_;
};

TEST_F(ForeignHumanoidTest, TasksWithUnmappedRolesAreRefusedAndMappedOnesMove) {
  // Without roles: the scripted motions would find none of their joints; refused, the roles listed.
  const auto bare = Write("foreign.json", descriptor_ + "}");
  std::string error = CollectError(bare, "wave");
  EXPECT_THAT(error, HasSubstr("--task wave: foreign lacks joint roles that wave needs"));
  // Every task's missing roles in one message, and the tasks that would run.
  EXPECT_THAT(error, HasSubstr("reach: right_shoulder_y, right_shoulder_x, right_elbow, left_shoulder_y, left_shoulder_x, left_elbow, abdomen_z, "
                               "abdomen_y; squat: right_hip_y, right_knee, right_ankle_y, right_shoulder_y, left_hip_y, left_knee, "
                               "left_ankle_y, left_shoulder_y, abdomen_y; turn: abdomen_z, neck_z; "
                               "wave: right_shoulder_x, right_elbow, left_shoulder_x, left_elbow."));
  EXPECT_THAT(error, HasSubstr("Tasks that run with the roles given: wander."));
  EXPECT_THAT(error, HasSubstr("\"roles\""));
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
  EXPECT_FALSE(LeftOutput());
  // mix includes the role tasks: every one that lacks roles is named at once.
  EXPECT_THAT(CollectError(bare, "mix"), HasSubstr("--task mix: foreign lacks joint roles that reach, squat, turn, wave needs"));
  // wander needs no roles: it runs.
  EXPECT_EQ(CollectError(bare, "wander", 1), "");
  fs::remove_all(dir_ / "out.h5.parts");
  fs::remove(dir_ / "out.h5");

  // With roles mapped: wave collects, the mapped joints move, and the motion succeeds.
  std::string roles;
  for (const char* role : {"right_shoulder_x", "right_elbow", "left_shoulder_x", "left_elbow"}) {
    roles += std::string(roles.empty() ? "" : ", ") + "\"" + role + "\": \"x_" + role + "\"";
  }
  const auto mapped = Write("foreign_mapped.json", descriptor_ + ", \"roles\": {" + roles + "}}");
  // With wave's roles only, mix names the three tasks still lacking and says wave now runs.
  error = CollectError(mapped, "mix");
  EXPECT_THAT(error, HasSubstr("lacks joint roles that reach, squat, turn needs"));
  EXPECT_THAT(error, HasSubstr("Tasks that run with the roles given: wave, wander."));
  EXPECT_THAT(error, Not(HasSubstr("wave: ")));
  ASSERT_EQ(CollectError(mapped, "wave", 2, 150), "");  // a wave takes up to ~6 keyframes of <= 35 steps
  const Dataset ds(dir_ / "out.h5");
  ASSERT_EQ(ds.demos().size(), 2u);
  const robots::Embodiment e = robots::LoadEmbodimentFile(mapped);
  for (const auto& demo : ds.demos()) {
    std::vector<hsize_t> dims;
    const auto q = ds.Read<float>(demo, "obs/robot0_joint_pos", &dims);
    const int joints = static_cast<int>(dims[1]), steps = static_cast<int>(dims[0]);
    double moved = 0;
    for (const char* role : {"right_elbow", "left_elbow"}) {
      const int j = e.JointForRole(role);
      ASSERT_GE(j, 0);
      float lo = q[j], hi = q[j];
      for (int t = 0; t < steps; ++t) lo = std::min(lo, q[t * joints + j]), hi = std::max(hi, q[t * joints + j]);
      moved = std::max(moved, static_cast<double>(hi - lo));
    }
    EXPECT_GT(moved, 0.5) << demo << ": the waving elbow should swing";
    EXPECT_EQ(ds.IntAttr(demo, "success"), 1) << demo;
  }
  // A role mapped to a joint the robot does not control is refused at load.
  EXPECT_THROW(robots::EmbodimentFromJson(descriptor_ + R"(, "roles": {"right_elbow": "no_such_joint"}})", dir_), robots::EmbodimentError);
}

// Tests that the MJCF's own problems are reported before the roles a task lacks.
TEST_F(ForeignHumanoidTest, MjcfProblemsComeBeforeMissingRoles) {
  std::string d = descriptor_;
  d.replace(d.find("humanoid_left_hand"), std::string("humanoid_left_hand").size(), "no_such_hand");
  const std::string error = CollectError(Write("badsite.json", d + "}"), "wave");
  EXPECT_THAT(error, HasSubstr("no_such_hand"));
  EXPECT_THAT(error, Not(HasSubstr("lacks joint roles")));
  EXPECT_FALSE(LeftOutput());
}

TEST_F(ForeignHumanoidTest, HumanoidWithoutSitesIsRefusedAtLoad) {
  std::string d = descriptor_;
  d.replace(d.find("\"ee_sites\""), std::string(R"("ee_sites": ["humanoid_right_hand", "humanoid_left_hand"],)").size(), "");
  const auto robot = Write("nosites.json", d + "}");
  EXPECT_THAT(CollectError(robot), HasSubstr("missing required field \"ee_sites\""));
  EXPECT_FALSE(LeftOutput());
}

}  // namespace
}  // namespace embody::collect
