// One episode: randomize the scene from (seed, index, attempt), reset the robot home, run a scripted
// policy with noise for `steps` control steps, and record frames, proprio, objects, full MuJoCo
// states, actions, controller joint targets and rewards. Unstable attempts are redrawn.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collect/config.h"
#include "collect/episode_data.h"
#include "collect/policies.h"
#include "collect/proprio.h"
#include "collect/randomizer.h"
#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/renderer.h"
#include "sim/world.h"

namespace embody::collect {

/// A custom episode (surprise's clips, replays): where actions come from and what may change the
/// state between control steps.
struct EpisodeScript {
  std::string task;  ///< recorded as the episode's task
  /// The normalized action of control step t (t = 0..steps-1), seeing the world before it.
  std::function<std::vector<double>(int t, const sim::World& world)> action;
  /// Optional: called before frame t is recorded (after control step t-1's physics), may change the state.
  std::function<void(int t, sim::World& world)> before_record;
  /// Optional: whether the task's goal holds (rewards); none: rewards 0.
  std::function<bool(const sim::World& world)> success;
};

/// Runs episodes on its own model, data and renderer: make one per thread.
class EpisodeRunner {
 public:
  /// @throws robots::EmbodimentError, sim::SimError, CollectError.
  EpisodeRunner(const CollectConfig& config, bool render = true);

  /// The episode `index`, redrawn (attempt 1, 2, ...) while it goes unstable. @throws sim::UnstableError
  /// after 20 unstable attempts.
  EpisodeData Run(std::int64_t index);

  /// Applies a recorded draw and puts the scene in its initial state (for replay).
  void Prepare(const Draw& draw);
  /// Draws a scene the way simcollect does, the one place that does it (the collector, `plan` and
  /// `surprise` call it): a draw of the runner's randomization with `num_cameras` cameras from
  /// `rng`, then `edit` (more cameras from a stream of their own, a scene group's layout, a turned
  /// camera), applied (Prepare), and the objects settled on the table (kSettleSteps physics steps).
  /// Returns the draw.
  Draw DrawScene(int num_cameras, Rng* rng, const std::function<void(Draw*)>& edit = {});
  /// Physics steps a drawn scene settles for before anything acts in it.
  static constexpr int kSettleSteps = 50;
  /// Records `steps` control steps of `script` from the current state (after Prepare), as Run records
  /// an episode (frames of every camera of the draw, proprio, objects, states, actions). No redraws:
  /// sim::UnstableError propagates.
  EpisodeData RunScript(std::int64_t index, int steps, const EpisodeScript& script);
  sim::World& world() { return *world_; }
  sim::Renderer* renderer() { return renderer_.get(); }
  const robots::Embodiment& embodiment() const { return embodiment_; }
  const SceneRandomizer& randomizer() const { return *randomizer_; }
  const sim::RobotController& controller() const { return *controller_; }
  const SceneRefs& scene() const { return scene_; }
  const Draw& draw() const { return draw_; }
  int substeps() const { return substeps_; }
  /// The robot's proprio now, in the layout stage two reads from a dataset (collect/proprio.h).
  std::vector<float> Proprio() const;
  ProprioLayout proprio_layout() const { return {controller_->num_joints(), static_cast<int>(gripper_qpos_.size())}; }
  /// The site recorded as the end effector (the controller's, else the embodiment's first ee site).
  int EeSite() const;

 private:
  EpisodeData Attempt(std::int64_t index, int attempt);
  void Record(EpisodeData* ep);

  CollectConfig config_;
  robots::Embodiment embodiment_;
  std::vector<Task> tasks_;
  sim::MjModelPtr nominal_;
  std::unique_ptr<sim::World> world_;
  std::unique_ptr<sim::RobotController> controller_;
  std::unique_ptr<SceneRandomizer> randomizer_;
  std::unique_ptr<sim::Renderer> renderer_;
  std::vector<int> gripper_qpos_;
  std::vector<int> site_ids_;  ///< the embodiment's ee sites when it has several (their order in sites_pos)
  std::string eye_in_hand_;    ///< the hand camera recorded with --eye-in-hand (empty without)
  SceneRefs scene_;
  int substeps_ = 1;
  Draw draw_;
};

}  // namespace embody::collect
