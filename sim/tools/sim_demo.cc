// sim-demo: loads each built-in robot, drives it from home with small random actions, and renders
// frames from two cameras to PNG under --out (the scene's "front" and "side", else its first two
// cameras, else two framing the model). The foundation's "main job" for `make demo`.
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <cstdlib>

#include <CLI/CLI.hpp>

#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/image_io.h"
#include "sim/renderer.h"
#include "sim/world.h"

namespace {

using namespace embody;

void RunRobot(const std::string& name, const std::filesystem::path& out_dir, int steps, int frames, int image_size, unsigned seed) {
  const robots::Embodiment embodiment = robots::FindEmbodiment(name);
  sim::World world = sim::World::FromFile(embodiment.mjcf);
  sim::RobotController controller(world.model(), embodiment);
  controller.ResetToHome(&world);
  sim::Renderer renderer(world.model(), {image_size, image_size});
  const int substeps = sim::PhysicsStepsPerControl(embodiment, world.model());

  // The model's "front" and "side" cameras (the built-in scenes'), else its first two cameras, else
  // two free cameras framing the model's bounding sphere from the front (+x) and the side (-y).
  std::vector<std::pair<std::string, sim::Camera>> cameras;
  const mjModel* m = world.model();
  for (const char* name : {"front", "side"}) {
    if (mj_name2id(m, mjOBJ_CAMERA, name) >= 0) cameras.push_back({name, sim::Camera::Named(name)});
  }
  if (cameras.empty()) {
    for (int c = 0; c < m->ncam && cameras.size() < 2; ++c) {
      if (const char* name = mj_id2name(m, mjOBJ_CAMERA, c)) cameras.push_back({name, sim::Camera::Named(name)});
    }
  }
  if (cameras.empty()) {
    const std::array<double, 3> c = {m->stat.center[0], m->stat.center[1], m->stat.center[2]};
    const double d = 2.2 * std::max(0.2, static_cast<double>(m->stat.extent));
    cameras.push_back({"front", sim::Camera::LookAt({c[0] + d, c[1], c[2] + 0.4 * d}, c, 45)});
    cameras.push_back({"side", sim::Camera::LookAt({c[0], c[1] - d, c[2] + 0.4 * d}, c, 45)});
  }

  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uniform(-0.3, 0.3);
  const int every = std::max(1, steps / frames);
  int written = 0;
  for (int step = 0; step < steps; ++step) {
    std::vector<double> action(embodiment.action_dim());
    for (double& a : action) a = uniform(rng);
    controller.ApplyAction(world.model(), world.mutable_data(), action);
    world.Step(substeps);
    if (step % every == 0 && written < frames) {
      for (const auto& [label, camera] : cameras) {
        sim::Image image;
        renderer.Render(world.data(), camera, &image);
        const auto path = out_dir / (embodiment.name + "_" + label + "_" + std::to_string(written) + ".png");
        sim::WritePng(path, image);
      }
      ++written;
    }
  }
  std::printf("%-9s %2d joints, %d control steps (%.1f s simulated), %d frames x %zu cameras -> %s/%s_*.png [%s]\n", embodiment.name.c_str(),
              controller.num_joints(), steps, world.data()->time, written, cameras.size(), out_dir.string().c_str(), embodiment.name.c_str(),
              renderer.backend().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  setenv("LP_NUM_THREADS", "0", /*overwrite=*/0);  // llvmpipe renders in the calling thread (see README)
  CLI::App app{"sim-demo: load each robot, step it, render frames to PNG"};
  std::vector<std::string> robots = embody::robots::BuiltinEmbodimentNames();
  std::string out = "out";
  int steps = 60, frames = 3, image_size = 128;
  unsigned seed = 0;
  app.add_option("--robots", robots, "Robots to run (built-in names or .json descriptors)");
  app.add_option("--out", out, "Output folder for PNG frames")->capture_default_str();
  app.add_option("--steps", steps, "Control steps per robot")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--frames", frames, "Frames written per camera")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--image-size", image_size, "Image width and height in pixels")->check(CLI::Range(8, 1024))->capture_default_str();
  app.add_option("--seed", seed, "Random seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::error_code ec;
  const bool existed = std::filesystem::exists(out, ec);
  try {
    for (const auto& name : robots) embody::robots::FindEmbodiment(name);  // bad names fail before anything is written
    std::filesystem::create_directories(out);
    for (const auto& name : robots) RunRobot(name, out, steps, frames, image_size, seed);
  } catch (const std::exception& e) {
    if (!existed) std::filesystem::remove_all(out, ec);  // a folder this run made holds nothing worth keeping
    std::fprintf(stderr, "sim-demo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
