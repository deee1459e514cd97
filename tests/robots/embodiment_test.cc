// Tests for robots/embodiment.cc.
#include "robots/embodiment.h"

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace embody::robots {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const EmbodimentError& e) {
    return e.what();
  }
  return "";
}

// Tests that the three built-in robots are registered and described consistently.
TEST(EmbodimentTest, BuiltinsAreRegistered) {
  EXPECT_EQ((std::vector<std::string>{"franka", "humanoid", "ur5"}), BuiltinEmbodimentNames());
  const Embodiment franka = FindEmbodiment("franka");
  EXPECT_EQ(EmbodimentKind::kArm, franka.kind);
  EXPECT_EQ(7u, franka.joints.size());
  EXPECT_EQ(7, franka.action_dim());
  EXPECT_TRUE(std::filesystem::exists(franka.mjcf)) << franka.mjcf;
  const Embodiment ur5 = FindEmbodiment("ur5");
  EXPECT_EQ(6u, ur5.joints.size());
  EXPECT_EQ(7, ur5.action_dim());
  const Embodiment humanoid = FindEmbodiment("humanoid");
  EXPECT_EQ(EmbodimentKind::kHumanoid, humanoid.kind);
  EXPECT_GE(humanoid.joints.size(), 20u);
  EXPECT_EQ(static_cast<int>(humanoid.joints.size()), humanoid.action_dim());
  EXPECT_EQ(humanoid.joints, humanoid.action_names());
}

// Tests that an unknown robot name fails with a message that lists the known robots.
TEST(EmbodimentTest, UnknownNameListsKnownRobots) {
  const std::string error = ErrorOf([] { FindEmbodiment("r2d2"); });
  EXPECT_THAT(error, HasSubstr("unknown robot \"r2d2\""));
  EXPECT_THAT(error, HasSubstr("franka, humanoid, ur5"));
}

// Tests that a user descriptor loads and resolves its MJCF path against the descriptor's folder.
TEST(EmbodimentTest, UserDescriptorResolvesRelativeMjcf) {
  const auto dir = std::filesystem::temp_directory_path() / "embody_embodiment_test";
  std::filesystem::create_directories(dir);
  const auto file = dir / "my_arm.json";
  std::ofstream(file) << R"({"name": "my_arm", "kind": "arm", "mjcf": "scenes/arm.xml",
    "base_body": "base", "joints": ["j1", "j2"], "ee_site": "tip", "home": [0.1, 0.2],
    "control_hz": 10, "action_scale": {"position": 0.02}})";
  const Embodiment e = FindEmbodiment(file.string());
  EXPECT_EQ("my_arm", e.name);
  EXPECT_EQ(dir / "scenes" / "arm.xml", e.mjcf);
  EXPECT_EQ((std::vector<double>{0.1, 0.2}), e.home);
  EXPECT_DOUBLE_EQ(10.0, e.control_hz);
  EXPECT_DOUBLE_EQ(0.02, e.action_scale.position);
  EXPECT_DOUBLE_EQ(0.25, e.action_scale.rotation);  // default kept
  std::filesystem::remove_all(dir);
}

// Tests that malformed descriptors name what is wrong.
TEST(EmbodimentTest, MalformedDescriptorsNameTheProblem) {
  const std::filesystem::path dir = "/tmp";
  EXPECT_THAT(ErrorOf([&] { EmbodimentFromJson("{not json", dir); }), HasSubstr("not valid JSON"));
  EXPECT_THAT(ErrorOf([&] { EmbodimentFromJson(R"({"name": "x", "kind": "arm"})", dir); }), HasSubstr("missing required field \"mjcf\""));
  EXPECT_THAT(ErrorOf([&] { EmbodimentFromJson(R"({"name": "x", "kind": "tank"})", dir); }), HasSubstr("\"kind\" must be"));
  EXPECT_THAT(ErrorOf([&] {
                EmbodimentFromJson(R"({"name": "x", "kind": "arm", "mjcf": "a.xml", "base_body": "b",
                  "joints": ["j1", "j2"], "ee_site": "s", "home": [0]})",
                                   dir);
              }),
              HasSubstr("\"home\" has 1 values for 2 joints"));
  EXPECT_THAT(ErrorOf([&] { EmbodimentFromJson(R"({"name": "x", "kind": "arm", "mjcf": 5})", dir); }),
              HasSubstr("field \"mjcf\" has the wrong type"));
  EXPECT_THAT(ErrorOf([] { LoadEmbodimentFile("/nonexistent/robot.json"); }), HasSubstr("cannot open embodiment descriptor /nonexistent/robot.json"));
}

}  // namespace
}  // namespace embody::robots
