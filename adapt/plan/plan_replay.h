// The replay file `plan` writes next to its results (`<out>_replay.h5`) and `rollout-viewer --plan`
// and `plan --video` read: for a few model-planner episodes, the goal image, camera 0's frame before
// every model step (and at the end), each step's imagined plan decoded to pixels (when the model
// folder has a decoder.pt), the plan's energy and the distance to the goal. No torch here.
//
// Layout: attributes embodiment, task, model, frame_skip, horizon, image_size, success_cm;
// /episode_<i>/{goal (S,S,3) u8, frames (T+1,S,S,3) u8, imagined (T,H,S,S,3) u8 (optional),
// targets (T,S,S,3) u8 (optional: the image each step aimed at, where a task has subgoal images),
// energy (T) f64, distance_cm (T+1) f64, model_error (T) f64 and model_error_frozen (any length) f64 (optional:
// the model's next-frame error per step, of this run and of the same episode planned without online
// adaptation)} with attributes episode, success, steps.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace embody::adapt {

struct PlanReplayEpisode {
  int episode = 0, steps = 0;  ///< steps: model steps executed (T)
  bool success = false;
  std::vector<std::uint8_t> goal;      ///< S*S*3
  std::vector<std::uint8_t> frames;    ///< (T+1)*S*S*3
  std::vector<std::uint8_t> imagined;  ///< T*H*S*S*3 decoded, or empty
  std::vector<std::uint8_t> targets;   ///< T*S*S*3: what each step aimed at (subgoals), or empty (the goal throughout)
  std::vector<double> energy;          ///< T
  std::vector<double> distance_cm;     ///< T+1
  /// The model's next-frame latent error (L1) per step (NaN at step 0), or empty; and the
  /// same for the episode planned without online adaptation (its own length), or empty.
  std::vector<double> model_error, model_error_frozen;
  const std::uint8_t* Frame(int t, int size) const { return frames.data() + static_cast<size_t>(t) * size * size * 3; }
  /// The image step t aimed at (the goal after the last step, or without targets).
  const std::uint8_t* Target(int t, int size) const {
    return t < steps && !targets.empty() ? targets.data() + static_cast<size_t>(t) * size * size * 3 : goal.data();
  }
  /// Step t's imagined frame h (nullptr without decoded frames).
  const std::uint8_t* Imagined(int t, int h, int horizon, int size) const {
    return imagined.empty() ? nullptr : imagined.data() + (static_cast<size_t>(t) * horizon + h) * size * size * 3;
  }
};

struct PlanReplayFile {
  std::string embodiment, task, model;
  int frame_skip = 1, horizon = 1, image_size = 0;
  double success_cm = 5;
  std::vector<PlanReplayEpisode> episodes;
};

/// Writes atomically. @throws std::runtime_error (AdaptError) when a size does not match.
void WritePlanReplayFile(const std::filesystem::path& path, const PlanReplayFile& replay);
/// @throws std::runtime_error (AdaptError) naming the file and what is wrong with it.
PlanReplayFile ReadPlanReplayFile(const std::filesystem::path& path);

}  // namespace embody::adapt
