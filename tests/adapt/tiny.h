// Tiny real inputs shared by the adapt/ tests: a franka dataset of 32 px frames and a JEPA
// configuration that trains in seconds on 2 cores.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "adapt/jepa.h"
#include "collect/collector.h"

namespace embody::adapt::tiny {

/// Collects `episodes` episodes of `robot` of `steps` steps at 32 px into `out` (no progress output).
inline void CollectRobot(const std::string& robot, const std::filesystem::path& out, int episodes, int steps, std::uint64_t seed) {
  collect::CollectConfig c;
  c.robot = robot;
  c.episodes = episodes;
  c.steps = steps;
  c.image_size = 32;
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

}  // namespace embody::adapt::tiny
