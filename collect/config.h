// The options of a collection run, their validation, and the part of them that defines the data
// (what --resume and merge must match).
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "collect/randomizer.h"

namespace embody::collect {

/// Bad user input to simcollect: one clear message.
class CollectError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CollectConfig {
  std::string robot = "franka";  ///< built-in name or embodiment .json
  std::string task = "mix";      ///< reach|push|pick|wander|mix (humanoid: reach|squat|turn|wave|wander|mix)
  std::int64_t episodes = 5000;
  int steps = 60;         ///< control steps (= frames) per episode
  double control_hz = 0;  ///< 0: the embodiment's rate
  int image_size = 64;    ///< square images, 16..256
  /// Views per episode. Two by default: the measured recipe (ur5 reach from goal images 96 % with
  /// two views, 69 % with one; docs/results.md), and what adapt and pretrain read by default.
  int cameras = 2;
  /// Also record the camera on the robot's hand (its descriptor's eye_in_hand_camera) as robomimic's
  /// robot0_eye_in_hand, a pose per frame: objects are large in it where the hand meets them.
  bool eye_in_hand = false;
  /// Episodes in consecutive groups of this many share one scene (cameras, lighting, materials,
  /// dynamics, embodiment), each with its own object layout; recorded as the `scene_group` attribute.
  /// Twins that differ only in where the objects stand: stage one's between-scene term can then tell
  /// them apart only by the objects (pretrain --scene-groups). 1 = every episode its own scene.
  int layouts_per_scene = 1;
  /// How the episodes of a scene group differ (with layouts_per_scene > 1): "all", each its own layout
  /// of every object; "one", the group's first episode has the group's layout and each other moves one
  /// object of it (the second the first object, the third the second, ..., in turn), so that telling
  /// the group's episodes apart needs every object, not any one.
  std::string layout_change = "all";
  /// What a scene group's episodes do (with layouts_per_scene > 1): "own", each its own scripted
  /// trajectory; "shared", every episode replays the group's first episode's actions open loop, so
  /// that the arm moves alike in every layout until it touches an object: what tells the episodes
  /// apart is then the objects, at the same moment of the same motion (pretrain --scene-groups).
  std::string group_actions = "own";
  int workers = 0;  ///< 0: one per core
  std::uint64_t seed = 0;
  RandomizationConfig randomization;
  std::string out;  ///< default: data/<robot>.h5 (with a shard suffix when sharded)
  int shard_index = 0, shard_count = 1;
  bool resume = false, overwrite = false;

  /// @throws CollectError naming the first bad option.
  void Validate() const;
  /// The options that define the data; equal identities mean identical episodes.
  nlohmann::json Identity() const;
  /// The inverse of Identity() (a dataset's embody_config), for replaying its episodes.
  /// @throws CollectError naming the missing or mistyped key.
  static CollectConfig FromIdentity(const nlohmann::json& identity);
  std::filesystem::path OutPath() const;
  int WorkerCount() const;
  /// Reads every option from JSON (keys as the long flag names with '_' or '-'; Identity()'s
  /// "randomization" object and a merged dataset's "shard": "merged" too).
  /// @throws CollectError for an unknown key or a wrong type.
  void UpdateFromJson(const nlohmann::json& j);
};

/// Parses "I/N" into shard index and count. @throws CollectError.
void ParseShard(const std::string& text, int* index, int* count);

/// Writes `j` (indented) to a temporary file and renames it over `path`. @throws CollectError.
void WriteJsonFileAtomically(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace embody::collect
