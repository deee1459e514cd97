#include "sim/renderer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "sim/egl_context.h"
#include "sim/world.h"

namespace embody::sim {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::array<double, 3> Normalized(std::array<double, 3> v) {
  const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  if (n < 1e-12) throw SimError("degenerate camera: position and target coincide or up is parallel");
  return {v[0] / n, v[1] / n, v[2] / n};
}

std::array<double, 3> Cross(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

// Orthonormal camera axes (right, up, back) of a free camera.
void FreeCameraAxes(const Camera& c, std::array<double, 3>* x, std::array<double, 3>* y, std::array<double, 3>* z) {
  const auto forward = Normalized({c.target[0] - c.position[0], c.target[1] - c.position[1], c.target[2] - c.position[2]});
  *x = Normalized(Cross(forward, c.up));
  *y = Cross(*x, forward);
  *z = {-forward[0], -forward[1], -forward[2]};
}

}  // namespace

struct Renderer::State {
  EglContext egl;
  mjvScene scene;
  mjvOption option;
  mjrContext context;
};

double CameraFovy(const mjModel* m, const Camera& camera) {
  if (camera.name.empty()) return camera.fovy_deg;
  return m->cam_fovy[RequireId(m, mjOBJ_CAMERA, camera.name)];
}

mjvCamera OrbitCameraFor(const Camera& camera) {
  mjvCamera cam;
  mjv_defaultCamera(&cam);
  double f[3], dist = 0;
  for (int i = 0; i < 3; ++i) {
    f[i] = camera.target[i] - camera.position[i];
    dist += f[i] * f[i];
  }
  dist = std::sqrt(dist);
  cam.type = mjCAMERA_FREE;
  for (int i = 0; i < 3; ++i) cam.lookat[i] = camera.target[i];
  cam.distance = dist;
  cam.azimuth = std::atan2(f[1], f[0]) * 180 / M_PI;
  cam.elevation = std::asin(f[2] / std::max(dist, 1e-12)) * 180 / M_PI;
  return cam;
}

void PoseGhost(const mjModel* m, const mjData* from, const std::vector<int>& qpos_addresses, const std::vector<double>& q, mjData* pose) {
  mju_copy(pose->qpos, from->qpos, m->nq);
  for (size_t j = 0; j < qpos_addresses.size() && j < q.size(); ++j) pose->qpos[qpos_addresses[j]] = q[j];
  mj_kinematics(m, pose);
}

Pose CameraPose(const mjModel* m, const mjData* d, const Camera& camera) {
  std::array<double, 3> x, y, z, p;
  if (camera.name.empty()) {
    FreeCameraAxes(camera, &x, &y, &z);
    p = camera.position;
  } else {
    const int id = RequireId(m, mjOBJ_CAMERA, camera.name);
    const mjtNum* r = d->cam_xmat + 9 * id;  // columns are the camera axes in world coordinates
    x = {r[0], r[3], r[6]};
    y = {r[1], r[4], r[7]};
    z = {r[2], r[5], r[8]};
    p = {d->cam_xpos[3 * id], d->cam_xpos[3 * id + 1], d->cam_xpos[3 * id + 2]};
  }
  return {x[0], y[0], z[0], p[0], x[1], y[1], z[1], p[1], x[2], y[2], z[2], p[2], 0, 0, 0, 1};
}

Intrinsics CameraIntrinsics(double fovy_deg, int width, int height) {
  const double f = 0.5 * height / std::tan(0.5 * fovy_deg * kPi / 180.0);
  return {f, f, 0.5 * width, 0.5 * height};
}

Renderer::Renderer(const mjModel* m, const RenderOptions& options) : model_(m), options_(options), state_(std::make_unique<State>()) {
  if (options.width < 1 || options.height < 1 || options.width > 4096 || options.height > 4096) {
    throw SimError("render size " + std::to_string(options.width) + "x" + std::to_string(options.height) + " is out of range (1..4096)");
  }
  // mjr_makeContext sizes the offscreen buffer, multisampling and shadow map from the model's
  // visual options; a shallow copy of the model carries the requested ones without touching `m`.
  mjModel sized = *m;
  sized.vis.global.offwidth = options.width;
  sized.vis.global.offheight = options.height;
  sized.vis.quality.offsamples = options.multisamples;
  if (!options.shadows) sized.vis.quality.shadowsize = 0;
  // Round geoms are tessellated per the model (28 slices by default); small images cannot show the
  // difference, and on CPU rasterizers the vertex work dominates (64 px: ~410 -> ~670 fps at 12).
  const int slices = options.tessellation >= 0 ? options.tessellation : std::max(options.width, options.height) <= 128 ? 12 : 0;
  if (slices > 0) {
    sized.vis.quality.numslices = std::max(slices, 3);
    sized.vis.quality.numstacks = std::max(slices / 2, 2);
    sized.vis.quality.numquads = 1;
  }

  mjv_defaultScene(&state_->scene);
  mjv_defaultOption(&state_->option);
  mjr_defaultContext(&state_->context);
  mjv_makeScene(m, &state_->scene, 2000);
  mjr_makeContext(&sized, &state_->context, mjFONTSCALE_100);
  mjr_setBuffer(mjFB_OFFSCREEN, &state_->context);
  if (state_->context.currentBuffer != mjFB_OFFSCREEN) {
    throw SimError("MuJoCo could not make an offscreen framebuffer of the requested size");
  }
  state_->scene.flags[mjRND_SHADOW] = options.shadows ? 1 : 0;
  state_->scene.flags[mjRND_REFLECTION] = 0;
  state_->scene.flags[mjRND_SKYBOX] = 0;
}

Renderer::~Renderer() {
  state_->egl.MakeCurrent();
  mjr_freeContext(&state_->context);
  mjv_freeScene(&state_->scene);
}

const std::string& Renderer::backend() const { return state_->egl.platform(); }

void Renderer::Render(const mjData* d, const Camera& camera, Image* rgb, DepthImage* depth) {
  state_->egl.MakeCurrent();
  mjvScene& scene = state_->scene;
  mjvCamera cam;
  mjv_defaultCamera(&cam);
  if (!camera.name.empty()) {
    cam.type = mjCAMERA_FIXED;
    cam.fixedcamid = RequireId(model_, mjOBJ_CAMERA, camera.name);
  }
  mjv_updateScene(model_, const_cast<mjData*>(d), &state_->option, nullptr, &cam, mjCAT_ALL, &scene);
  if (camera.name.empty()) {
    // A free camera: overwrite the OpenGL cameras mjv_updateScene made with ours.
    std::array<double, 3> x, y, z;
    FreeCameraAxes(camera, &x, &y, &z);
    for (mjvGLCamera& gl : scene.camera) {
      for (int i = 0; i < 3; ++i) {
        gl.pos[i] = static_cast<float>(camera.position[i]);
        gl.forward[i] = static_cast<float>(-z[i]);
        gl.up[i] = static_cast<float>(y[i]);
      }
      gl.frustum_center = 0;
      gl.frustum_top = gl.frustum_near * static_cast<float>(std::tan(0.5 * camera.fovy_deg * kPi / 180.0));
      gl.frustum_bottom = -gl.frustum_top;
    }
  }
  const mjrRect viewport = {0, 0, options_.width, options_.height};
  mjr_render(viewport, &scene, &state_->context);

  const int w = options_.width, h = options_.height;
  std::vector<std::uint8_t> raw_rgb(rgb ? 3 * w * h : 0);
  std::vector<float> raw_depth(depth ? w * h : 0);
  mjr_readPixels(rgb ? raw_rgb.data() : nullptr, depth ? raw_depth.data() : nullptr, viewport, &state_->context);
  // OpenGL rows start at the bottom; images here start at the top.
  if (rgb) {
    rgb->width = w;
    rgb->height = h;
    rgb->rgb.resize(raw_rgb.size());
    for (int row = 0; row < h; ++row) {
      std::memcpy(&rgb->rgb[3 * w * row], &raw_rgb[3 * w * (h - 1 - row)], 3 * w);
    }
  }
  if (depth) {
    // Linearize the depth buffer with the frustum MuJoCo rendered with.
    const double extent = model_->stat.extent;
    const double znear = model_->vis.map.znear * extent, zfar = model_->vis.map.zfar * extent;
    depth->width = w;
    depth->height = h;
    depth->meters.resize(raw_depth.size());
    for (int row = 0; row < h; ++row) {
      for (int col = 0; col < w; ++col) {
        const double z = raw_depth[w * (h - 1 - row) + col];
#if mjVERSION_HEADER >= 300
        // MuJoCo 3 renders with a reversed-z projection.
        depth->meters[w * row + col] = static_cast<float>(znear / std::max(z, 1e-9));
#else
        depth->meters[w * row + col] = static_cast<float>(znear * zfar / (zfar - z * (zfar - znear)));
#endif
      }
    }
  }
}

}  // namespace embody::sim
