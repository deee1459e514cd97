// Tiny real inputs shared by the adapt/ tests: a franka dataset of 32 px frames, a JEPA
// configuration that trains in seconds on 2 cores, and small untrained world models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "adapt/encoder/jepa.h"
#include "adapt/world_model/world_model.h"
#include "collect/collector.h"
#include "collect/episode.h"

namespace embody::adapt::tiny {

/// Collects `episodes` episodes of `robot` of `steps` steps at 32 px from `cameras` views into `out`
/// (no progress output).
inline void CollectRobot(const std::string& robot, const std::filesystem::path& out, int episodes, int steps, std::uint64_t seed, int cameras = 1) {
  collect::CollectConfig c;
  c.robot = robot;
  c.episodes = episodes;
  c.steps = steps;
  c.image_size = 32;
  c.cameras = cameras;
  c.seed = seed;
  c.out = out.string();
  collect::Collect(c, {.enabled = false});
}

/// CollectRobot for franka.
inline void CollectFranka(const std::filesystem::path& out, int episodes, int steps, std::uint64_t seed) {
  CollectRobot("franka", out, episodes, steps, seed);
}

/// A 32 px encoder (width 8, 16-dim tokens), 40 steps of batch 8, 2 threads, no logging.
inline JepaConfig Jepa() {
  JepaConfig c;
  c.encoder = {32, 8, 16};
  c.batch = 8;
  c.steps = 40;
  c.lr = 3e-3;
  c.threads = 2;
  c.log_every = 1000;
  c.eval_every = 1000;
  c.seed = 3;
  return c;
}

/// franka's stage-two spec as `runner` records it (joint positions and velocities, ee pose, gripper).
inline EmbodimentSpec FrankaSpec(const collect::EpisodeRunner& runner) {
  const int p = static_cast<int>(runner.Proprio().size()), j = runner.controller().num_joints();
  return {"franka", j, p - 2 * j - 7, 7, "dx,dy,dz,drx,dry,drz,gripper"};
}

/// A small predictor: 16-dim latents of one token, width 16, depth 1, 2 heads, context 2.
inline PredictorConfig SmallPredictor(int frame_skip) {
  PredictorConfig c;
  c.latent_dim = 16;
  c.tokens = 1;
  c.dim = 16;
  c.depth = 1;
  c.heads = 2;
  c.context = 2;
  c.frame_skip = frame_skip;
  return c;
}

/// The identity normalizer of `p` proprio numbers.
inline Normalizer IdentityNormalizer(int p) { return {torch::zeros({p}), torch::ones({p}), torch::zeros({p}), torch::ones({p})}; }

/// A world model of `config` for `spec` that was never trained (its predictor is exactly copy-last),
/// initialized from seed 3, with the identity normalizer.
inline WorldModel Untrained(const PredictorConfig& config, const EmbodimentSpec& spec) {
  torch::manual_seed(3);
  WorldModel model(config);
  model.AddEmbodiment(spec, IdentityNormalizer(spec.proprio_dim()));
  return model;
}

}  // namespace embody::adapt::tiny
