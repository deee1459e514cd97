#include "adapt/plan/arm_scene.h"

#include "adapt/core/error.h"

namespace embody::adapt {

std::unique_ptr<collect::EpisodeRunner> MakeArmSceneRunner(const std::string& robot, const collect::RandomizationConfig& randomization,
                                                           int image_size, std::uint64_t seed, const std::string& program,
                                                           collect::CollectConfig* config) {
  config->robot = robot;
  config->image_size = image_size;
  config->cameras = 1;
  config->seed = seed;
  config->randomization = randomization;
  config->task = "reach";
  auto runner = std::make_unique<collect::EpisodeRunner>(*config);
  if (runner->embodiment().kind != robots::EmbodimentKind::kArm) {
    throw AdaptError(program + " works with arms (ee-delta actions, tables with objects); " + robot + " is not an arm");
  }
  return runner;
}

void AddCameras(const collect::SceneRandomizer& randomizer, const collect::RandomizationConfig& randomization, int views, collect::Rng rng,
                collect::Draw* draw) {
  if (views <= 1) return;
  const collect::Draw more = randomizer.Sample(randomization, views, &rng);
  draw->cameras.resize(1);
  draw->cameras.insert(draw->cameras.end(), more.cameras.begin() + 1, more.cameras.end());
}

}  // namespace embody::adapt
