// sim-demo: loads each built-in robot, drives it from home with small random actions, and renders
// frames from two cameras to PNG under --out. The foundation's "main job" for `make demo`.
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

void RunRobot(const std::string& name, const std::filesystem::path& out_dir, int steps, int frames,
              int image_size, unsigned seed) {
  const robots::Embodiment embodiment = robots::FindEmbodiment(name);
  sim::World world = sim::World::FromFile(embodiment.mjcf);
  sim::RobotController controller(world.model(), embodiment);
  controller.ResetToHome(&world);
  sim::Renderer renderer(world.model(), {image_size, image_size});
  const int substeps = sim::PhysicsStepsPerControl(embodiment, world.model());

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
      for (const char* camera : {"front", "side"}) {
        sim::Image image;
        renderer.Render(world.data(), sim::Camera::Named(camera), &image);
        const auto path = out_dir / (name + "_" + camera + "_" + std::to_string(written) + ".png");
        sim::WritePng(path, image);
      }
      ++written;
    }
  }
  std::printf("%-9s %2d joints, %d control steps (%.1f s simulated), %d frames x 2 cameras -> %s/%s_*.png [%s]\n",
              name.c_str(), controller.num_joints(), steps, world.data()->time, written,
              out_dir.string().c_str(), name.c_str(), renderer.backend().c_str());
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
  app.add_option("--image-size", image_size, "Image width and height in pixels")
      ->check(CLI::Range(8, 1024))->capture_default_str();
  app.add_option("--seed", seed, "Random seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    std::filesystem::create_directories(out);
    for (const auto& name : robots) RunRobot(name, out, steps, frames, image_size, seed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sim-demo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
