// Scripted task policies with noise. Arms: reach (waypoints, gripper toggles), push (an object to a
// goal), pick (grasp, lift, place), wander (smooth random ee deltas). Humanoid: reach with either
// hand, squat, turn, wave, and random smooth joint targets. Every policy outputs normalized actions
// in [-1,1] and says whether its goal holds (for rewards and success).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "collect/rng.h"
#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/world.h"

namespace embody::collect {

enum class Task { kReach, kPush, kPick, kWander, kSquat, kTurn, kWave };

std::string TaskName(Task task);
/// The tasks a `--task` value stands for on an embodiment ("mix" is all of them).
/// @throws std::invalid_argument for an unknown task, one the embodiment cannot do, or (humanoids) one
/// whose joint roles the embodiment does not map.
std::vector<Task> TasksFor(const robots::Embodiment& embodiment, const std::string& task);
/// The joint roles a humanoid task moves (Embodiment::roles maps them to the robot's joints); TasksFor
/// refuses a task whose roles are not all controlled joints, naming the missing ones.
std::vector<std::string> HumanoidRoles(Task task);

/// What a policy sees of the scene besides the robot.
struct SceneRefs {
  std::vector<int> object_bodies;  ///< free bodies (cup, box, ball)
  double table_top = 0.4;
};

class Policy {
 public:
  virtual ~Policy() = default;
  /// The next normalized action (noise is added by the caller).
  virtual std::vector<double> Act(const sim::World& world) = 0;
  /// Whether the task's goal holds in the current state.
  virtual bool Success(const sim::World& world) const = 0;
};

/// A policy for `task`, its goals drawn from `rng`. Call after the episode's reset.
std::unique_ptr<Policy> MakePolicy(Task task, const sim::RobotController& controller, const SceneRefs& scene, const sim::World& world, Rng* rng);

}  // namespace embody::collect
