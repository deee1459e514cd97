// Headless offscreen rendering of a World: RGB and metric depth, from a named model camera or a
// free camera given by position, look-at point and vertical field of view. One renderer per thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <mujoco/mujoco.h>

namespace embody::sim {

/// A camera: a named one from the model, or a free one (position, target, up, fovy in degrees).
struct Camera {
  std::string name;  ///< Model camera; empty for a free camera.
  std::array<double, 3> position{1.5, 0.0, 1.0};
  std::array<double, 3> target{0.5, 0.0, 0.4};
  std::array<double, 3> up{0.0, 0.0, 1.0};
  double fovy_deg = 45.0;

  static Camera Named(std::string name) {
    Camera c;
    c.name = std::move(name);
    return c;
  }
  static Camera LookAt(const std::array<double, 3>& position, const std::array<double, 3>& target, double fovy_deg) {
    Camera c;
    c.position = position;
    c.target = target;
    c.fovy_deg = fovy_deg;
    return c;
  }
};

/// Pinhole intrinsics in pixels (square pixels, principal point at the image centre).
struct Intrinsics {
  double fx, fy, cx, cy;
};

/// Camera-to-world transform, row-major 4x4, OpenGL convention (x right, y up, looking along -z).
using Pose = std::array<double, 16>;

struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  ///< height*width*3, row 0 at the top.
};
struct DepthImage {
  int width = 0, height = 0;
  std::vector<float> meters;  ///< height*width distances along the view axis, row 0 at the top.
};

struct RenderOptions {
  int width = 64;
  int height = 64;
  bool shadows = false;  ///< Off by default: the 4096 shadow map costs ~10x on CPU rasterizers.
  int multisamples = 0;  ///< Offscreen multisampling (0 = off, the fast default).
  /// Slices of round geoms (stacks are half). -1: 12 for images up to 128 px (where finer
  /// tessellation cannot show), the model's own otherwise; 0: always the model's.
  int tessellation = -1;
};

/// Vertical field of view (degrees) and pose of a camera in the current state of `d`.
/// @throws SimError for an unknown camera name.
double CameraFovy(const mjModel* m, const Camera& camera);
Pose CameraPose(const mjModel* m, const mjData* d, const Camera& camera);
Intrinsics CameraIntrinsics(double fovy_deg, int width, int height);

/// MuJoCo's orbiting free camera (lookat, distance, azimuth, elevation) that sees what the free
/// `camera` (position, target) sees. Its field of view is not in mjvCamera: free cameras take the
/// model's vis.global.fovy (set it to camera.fovy_deg before mjv_updateScene).
mjvCamera OrbitCameraFor(const Camera& camera);

/// `pose` = `from` with the joints at `qpos_addresses` set to `q` (same order), forward kinematics
/// done: a robot drawn at another configuration in the same scene (the viewer's ghost).
void PoseGhost(const mjModel* m, const mjData* from, const std::vector<int>& qpos_addresses, const std::vector<double>& q, mjData* pose);

class Renderer {
 public:
  /// Creates an EGL context on the calling thread and MuJoCo's render context sized to `options`.
  /// `m` must outlive the renderer. @throws SimError when no headless context can be made.
  Renderer(const mjModel* m, const RenderOptions& options);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  /// Renders the state in `d` (after mj_forward or a step). Either output may be null.
  /// @throws SimError for an unknown camera name.
  void Render(const mjData* d, const Camera& camera, Image* rgb, DepthImage* depth = nullptr);

  const RenderOptions& options() const { return options_; }
  /// Which EGL platform the context came from ("egl-device" or "egl-surfaceless").
  const std::string& backend() const;

 private:
  struct State;
  const mjModel* model_;
  RenderOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace embody::sim
