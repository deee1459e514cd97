// sim-bench: physics-only steps/s and render-only frames/s for each built-in robot, measured here.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <cstdlib>

#include <CLI/CLI.hpp>

#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/renderer.h"
#include "sim/world.h"

namespace {

using namespace embody;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

void Bench(const std::string& name, int physics_steps, int frames, const std::vector<int>& sizes) {
  const robots::Embodiment embodiment = robots::FindEmbodiment(name);
  sim::World world = sim::World::FromFile(embodiment.mjcf);
  sim::RobotController controller(world.model(), embodiment);
  controller.ResetToHome(&world);
  const int substeps = sim::PhysicsStepsPerControl(embodiment, world.model());
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> uniform(-0.3, 0.3);

  auto start = Clock::now();
  for (int done = 0; done < physics_steps; done += substeps) {
    std::vector<double> action(embodiment.action_dim());
    for (double& a : action) a = uniform(rng);
    controller.ApplyAction(world.model(), world.mutable_data(), action);
    world.Step(substeps);
  }
  const double physics_rate = physics_steps / Seconds(start);
  std::printf("%-9s physics: %9.0f steps/s (%.2f ms simulated per step, %.0fx real time)\n", name.c_str(), physics_rate,
              1000 * world.model()->opt.timestep, physics_rate * world.model()->opt.timestep);
  for (int size : sizes) {
    sim::Renderer renderer(world.model(), {size, size});
    sim::Image image;
    renderer.Render(world.data(), sim::Camera::Named("front"), &image);  // warm-up
    start = Clock::now();
    for (int i = 0; i < frames; ++i) renderer.Render(world.data(), sim::Camera::Named("front"), &image);
    std::printf("%-9s render %3dx%-3d: %7.1f frames/s [%s]\n", name.c_str(), size, size, frames / Seconds(start), renderer.backend().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  setenv("LP_NUM_THREADS", "0", /*overwrite=*/0);  // llvmpipe renders in the calling thread (see README)
  CLI::App app{"sim-bench: physics steps/s and render frames/s per robot"};
  std::vector<std::string> robots = embody::robots::BuiltinEmbodimentNames();
  int physics_steps = 20000, frames = 200;
  std::vector<int> sizes = {64, 128, 256};
  app.add_option("--robots", robots, "Robots to measure");
  app.add_option("--physics-steps", physics_steps, "Physics steps timed per robot")->capture_default_str();
  app.add_option("--frames", frames, "Frames timed per image size")->capture_default_str();
  app.add_option("--sizes", sizes, "Square image sizes to time")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& name : robots) Bench(name, physics_steps, frames, sizes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sim-bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
