// Tests for sim/renderer.cc: real offscreen rendering through EGL, with no X display.
#include "sim/renderer.h"

#include <cmath>
#include <cstdlib>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/world.h"

namespace embody::sim {
namespace {

class RendererTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("DISPLAY");  // rendering must not need an X server
    embodiment_ = robots::FindEmbodiment("franka");
    world_ = std::make_unique<World>(World::FromFile(embodiment_.mjcf));
    RobotController(world_->model(), embodiment_).ResetToHome(world_.get());
  }
  robots::Embodiment embodiment_;
  std::unique_ptr<World> world_;
};

bool IsUniform(const Image& image) {
  for (size_t i = 3; i < image.rgb.size(); ++i) {
    if (image.rgb[i] != image.rgb[i % 3]) return false;
  }
  return true;
}

// Tests that the orbit camera for a free camera looks from its position at its target (MuJoCo's
// azimuth/elevation convention: the camera sits at lookat - distance * forward), and that a ghost
// pose moves only the given joints, with kinematics done.
TEST_F(RendererTest, OrbitCameraAndGhostPose) {
  const Camera c = Camera::LookAt({1.0, 1.0, 1.5}, {0.0, 0.0, 0.5}, 40);
  const mjvCamera cam = OrbitCameraFor(c);
  EXPECT_EQ(cam.type, mjCAMERA_FREE);
  EXPECT_NEAR(cam.distance, std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(cam.azimuth, -135.0, 1e-9);
  EXPECT_NEAR(cam.elevation, -std::asin(1 / std::sqrt(3.0)) * 180 / M_PI, 1e-9);
  const double az = cam.azimuth * M_PI / 180, el = cam.elevation * M_PI / 180;
  const double forward[3] = {std::cos(el) * std::cos(az), std::cos(el) * std::sin(az), std::sin(el)};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(cam.lookat[i] - cam.distance * forward[i], c.position[i], 1e-9) << i;

  const mjModel* m = world_->model();
  mjData* ghost = mj_makeData(m);
  const int adr = m->jnt_qposadr[RequireId(m, mjOBJ_JOINT, embodiment_.joints[1])];
  const int body = m->jnt_bodyid[RequireId(m, mjOBJ_JOINT, embodiment_.joints[1])];
  PoseGhost(m, world_->data(), {adr}, {world_->data()->qpos[adr] + 0.5}, ghost);
  for (int i = 0; i < m->nq; ++i) EXPECT_EQ(ghost->qpos[i], i == adr ? world_->data()->qpos[adr] + 0.5 : world_->data()->qpos[i]) << i;
  double moved = 0;
  for (int k = 0; k < 3; ++k) moved += std::abs(ghost->xpos[3 * (body + 1) + k] - world_->data()->xpos[3 * (body + 1) + k]);
  EXPECT_GT(moved, 1e-3);  // the link after the joint moved: kinematics ran
  mj_deleteData(ghost);
}

// Tests that an image has the requested (non-square) size and is not uniform.
TEST_F(RendererTest, ImageHasRequestedSizeAndContent) {
  Renderer renderer(world_->model(), {.width = 96, .height = 72});
  Image image;
  renderer.Render(world_->data(), Camera::Named("front"), &image);
  EXPECT_EQ(96, image.width);
  EXPECT_EQ(72, image.height);
  ASSERT_EQ(96u * 72u * 3u, image.rgb.size());
  EXPECT_FALSE(IsUniform(image));
}

// Tests that two different free-camera poses give different images.
TEST_F(RendererTest, DifferentCamerasGiveDifferentImages) {
  Renderer renderer(world_->model(), {.width = 64, .height = 64});
  Image a, b;
  renderer.Render(world_->data(), Camera::LookAt({1.6, 0.0, 1.2}, {0.4, 0.0, 0.5}, 45), &a);
  renderer.Render(world_->data(), Camera::LookAt({0.4, -1.5, 1.0}, {0.4, 0.0, 0.5}, 45), &b);
  EXPECT_FALSE(IsUniform(a));
  EXPECT_NE(a.rgb, b.rgb);
}

// Tests that restoring a saved state reproduces the same image bit for bit.
TEST_F(RendererTest, StateRoundTripReproducesImage) {
  Renderer renderer(world_->model(), {.width = 64, .height = 64});
  world_->mutable_data()->ctrl[0] = 0.8;  // swing joint 1 so the scene changes over time
  world_->Step(100);
  const std::vector<double> state = world_->GetState();
  Image before, moved, after;
  renderer.Render(world_->data(), Camera::Named("front"), &before);
  world_->Step(200);
  renderer.Render(world_->data(), Camera::Named("front"), &moved);
  world_->SetState(state);
  renderer.Render(world_->data(), Camera::Named("front"), &after);
  EXPECT_NE(before.rgb, moved.rgb);
  EXPECT_EQ(before.rgb, after.rgb);
}

// Tests that depth is metric: a camera 2 m above the floor, looking straight down past the table,
// sees the floor at 2 m.
TEST_F(RendererTest, DepthIsMetric) {
  Renderer renderer(world_->model(), {.width = 32, .height = 32});
  Camera down = Camera::LookAt({-1.5, 1.5, 2.0}, {-1.5, 1.5, 0.0}, 30);
  down.up = {1, 0, 0};
  DepthImage depth;
  renderer.Render(world_->data(), down, nullptr, &depth);
  ASSERT_EQ(32u * 32u, depth.meters.size());
  EXPECT_NEAR(2.0, depth.meters[16 * 32 + 16], 0.01);
}

// Tests that the pose and intrinsics of a free camera project a known point onto the pixel where it
// is drawn: the yellow ball's centre projects onto yellow.
TEST_F(RendererTest, IntrinsicsAndPoseProjectOntoRenderedPixels) {
  const int size = 96;
  Renderer renderer(world_->model(), {.width = size, .height = size});
  const int ball = RequireId(world_->model(), mjOBJ_BODY, "ball");
  const double* p = world_->data()->xpos + 3 * ball;
  const Camera camera = Camera::LookAt({1.4, 0.6, 0.9}, {p[0] + 0.05, p[1] - 0.04, p[2]}, 40);
  Image image;
  renderer.Render(world_->data(), camera, &image);
  const Pose pose = CameraPose(world_->model(), world_->data(), camera);
  const Intrinsics k = CameraIntrinsics(CameraFovy(world_->model(), camera), size, size);
  // World point into the camera frame (x right, y up, -z forward), then to pixels (row 0 on top).
  double c[3];
  for (int i = 0; i < 3; ++i) {
    c[i] = pose[0 + i] * (p[0] - pose[3]) + pose[4 + i] * (p[1] - pose[7]) + pose[8 + i] * (p[2] - pose[11]);
  }
  const int u = static_cast<int>(std::lround(k.cx + k.fx * c[0] / -c[2]));
  const int v = static_cast<int>(std::lround(k.cy - k.fy * c[1] / -c[2]));
  ASSERT_TRUE(u >= 0 && u < size && v >= 0 && v < size) << u << "," << v;
  const uint8_t* px = &image.rgb[3 * (v * size + u)];
  EXPECT_GT(px[0], 120) << "pixel " << u << "," << v;  // yellow: strong red and green, little blue
  EXPECT_GT(px[1], 100);
  EXPECT_LT(px[2], px[1] / 2);
}

// Tests that an unknown camera name is a clear error.
TEST_F(RendererTest, UnknownCameraIsAnError) {
  Renderer renderer(world_->model(), {.width = 16, .height = 16});
  Image image;
  try {
    renderer.Render(world_->data(), Camera::Named("ceiling"), &image);
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("no camera named \"ceiling\""));
  }
}

// Tests that turning shadows on changes the image (the option reaches the renderer).
TEST_F(RendererTest, ShadowsOptionChangesImage) {
  Renderer plain(world_->model(), {.width = 64, .height = 64});
  Renderer shadowed(world_->model(), {.width = 64, .height = 64, .shadows = true});
  Image a, b;
  plain.Render(world_->data(), Camera::Named("front"), &a);
  shadowed.Render(world_->data(), Camera::Named("front"), &b);
  EXPECT_NE(a.rgb, b.rgb);
}

}  // namespace
}  // namespace embody::sim
