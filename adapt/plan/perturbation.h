// A robot that is not the one the world model learned: named perturbations of a planning scene,
// set outside the training randomization (`plan --perturb NAME[=VALUE]`). Torch-free.
//
//   payload  kg on the hand (a 3 cm sphere at the end-effector site)    default 1.0
//   gains    the actuators' position gains, times                      default 0.5
//   damping  the joints' damping, times                                default 3
//   link     the longest link (largest offset to a child body), times  default 1.1
//   latency  control steps between an action sent and its effect       default 1
//   camera   every camera turned about its vertical axis (deg, knocked) default 5
//
// Each is an edit of the scene's draw (collect::Draw) after the randomization drew it, so the goal
// images show the perturbed world too; latency alone acts in PlanScene::Act. A value equal to the
// nominal one (payload 0, gains 1, damping 1, link 1, latency 0, camera 0) leaves the scene as drawn.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "collect/randomizer.h"

namespace embody::adapt {

struct Perturbation {
  std::string name;  ///< empty: none
  double value = 0;
  bool active() const { return !name.empty(); }
  /// {"name", "value", "unit"}; {"name": "none"} when inactive.
  nlohmann::json ToJson() const;
};

/// "NAME" (its default size) or "NAME=VALUE". @throws AdaptError naming the known perturbations, or
/// the range a value must lie in.
Perturbation ParsePerturbation(const std::string& text);
/// One line per perturbation: name, meaning, default (for --help and errors).
std::string PerturbationHelp();
/// What the value is measured in ("kg", "x", "control steps", "deg").
std::string PerturbationUnit(const std::string& name);
/// Turns every camera of `draw` by `deg` about the vertical: in place (its target swings about the
/// camera, a knocked camera) or orbiting (its position swings about its target, `plan --camera-offset`).
/// @throws AdaptError for a model-defined camera, naming `flag` (the option that asked).
void TurnCameras(collect::Draw* draw, double deg, bool in_place, const std::string& flag);
/// Edits a draw of `randomizer`'s scene as `p` says (latency: nothing here). @throws AdaptError for a
/// payload on a robot without an end-effector site, or a camera perturbation of a model-defined camera.
void ApplyPerturbation(const Perturbation& p, const collect::SceneRandomizer& randomizer, collect::Draw* draw);
/// Control steps of latency `p` adds (0 unless it is a latency perturbation).
int LatencySteps(const Perturbation& p);

}  // namespace embody::adapt
