// Per-episode domain randomization: cameras, lighting, materials, dynamics, embodiment (link lengths,
// base pose) and objects. A Draw is plain data: sampled from an Rng, applied to a model (always
// starting again from the nominal model), stored as JSON in the dataset, and re-applied for replay.
#pragma once

#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <mujoco/mujoco.h>
#include <nlohmann/json.hpp>

#include "collect/rng.h"
#include "robots/embodiment.h"
#include "sim/renderer.h"

namespace embody::collect {

/// How broad a group's randomization is. `light` jitters around the nominal, well-framed scene (what a
/// small world model learns from in CPU minutes); `default` and `wide` are for collection at scale.
enum class Level { kNone, kLight, kDefault, kWide };
/// "none" | "light" | "default" | "wide". @throws std::invalid_argument naming the bad value.
Level ParseLevel(const std::string& text);
std::string LevelName(Level level);

/// How much each group varies (simcollect's default: `light`, the world model's level).
struct RandomizationConfig {
  Level camera = Level::kLight;
  Level lighting = Level::kLight;
  Level materials = Level::kLight;
  Level dynamics = Level::kLight;
  Level embodiment = Level::kLight;
  Level objects = Level::kLight;
  static RandomizationConfig All(Level level) { return {level, level, level, level, level, level}; }
  /// The groups' names, in ToJson's keys and the --randomize-<group> flags.
  static const std::vector<std::string>& Groups();
  /// Sets one group's level; false for an unknown group name.
  bool Set(const std::string& group, Level level);
  nlohmann::json ToJson() const;
};

struct LightDraw {
  bool active = true;
  std::array<double, 3> dir{0, 0, -1};
  double diffuse = 0.6, specular = 0.2;
};
struct ObjectDraw {
  std::string body;
  double x = 0, y = 0, yaw = 0, size_scale = 1, mass_scale = 1;
};

/// One episode's draw. Scales are multiplicative (1 = nominal).
struct Draw {
  std::vector<sim::Camera> cameras;
  std::vector<LightDraw> lights;
  double ambient = 0.3;
  std::map<std::string, std::array<double, 4>> material_rgba;
  std::map<std::string, int> material_texture;  ///< texture id, -1 = none
  double mass_scale = 1, damping_scale = 1, armature_scale = 1, friction_scale = 1, gain_scale = 1;
  /// A load on the hand (kg): a 3 cm sphere of this mass at the end-effector site, rigidly attached
  /// to the site's body (arms). Never drawn (0 in every level): `plan --perturb payload` sets it.
  double payload_kg = 0;
  std::vector<double> segment_scale;  ///< one per robot segment body (see SceneRandomizer::segments)
  double base_dx = 0, base_dy = 0, base_yaw = 0;
  std::vector<ObjectDraw> objects;

  nlohmann::json ToJson() const;
  /// @throws std::runtime_error when a field is missing.
  static Draw FromJson(const nlohmann::json& j);
};

/// Knows a scene's robot segments, lights, materials and free objects, and randomizes them.
class SceneRandomizer {
 public:
  /// `nominal` must outlive this object.
  SceneRandomizer(const mjModel* nominal, const robots::Embodiment& embodiment);

  Draw Sample(const RandomizationConfig& config, int num_cameras, Rng* rng) const;
  /// Moves object `index` of `draw` to a new place on the table drawn as Sample draws it (apart from
  /// the other objects), at least `min_move` m from where it stood when the level lets it move that far;
  /// its yaw redrawn, its size and mass kept.
  void MoveObject(const RandomizationConfig& config, std::size_t index, double min_move, Draw* draw, Rng* rng) const;
  /// Copies the nominal model into `m` (same sizes), then applies the model part of `draw`.
  void ApplyToModel(const Draw& draw, mjModel* m) const;
  /// Places the objects of `draw` (poses are state, not model). Call after reset, before mj_forward.
  void PlaceObjects(const Draw& draw, const mjModel* m, mjData* d) const;

  const std::vector<int>& segments() const { return segments_; }
  /// The robot segment with the longest link (the largest offset to a child body): the one
  /// `plan --perturb link` stretches.
  std::size_t LongestSegment() const;
  const std::vector<int>& object_bodies() const { return object_bodies_; }

 private:
  /// Adds draw.payload_kg to the end-effector site's body (mass, centre of mass, inertia).
  /// @throws CollectError for a negative load or a robot without an end-effector site.
  void AddPayload(double kg, mjModel* m) const;
  double TableTop(const mjModel* m) const;
  double ObjectHalfHeight(const mjModel* m, int body) const;
  /// Where the model puts free body `b` (x, y of its joint's qpos0).
  std::pair<double, double> NominalPlace(int b) const;
  /// Draws a place for object body `b` apart (12 cm) from `others`, as the level `level` places objects.
  void PlaceApart(Level level, int b, const std::vector<ObjectDraw>& others, ObjectDraw* o, Rng* rng) const;
  // Sample's parts, drawn in this order from the one stream: cameras, lights, materials, dynamics
  // and embodiment, objects.
  void SampleCameras(const RandomizationConfig& config, int num_cameras, Rng* rng, Draw* draw) const;
  void SampleLights(const RandomizationConfig& config, Rng* rng, Draw* draw) const;
  void SampleMaterials(const RandomizationConfig& config, Rng* rng, Draw* draw) const;
  void SampleBody(const RandomizationConfig& config, Rng* rng, Draw* draw) const;
  void SampleObjects(const RandomizationConfig& config, Rng* rng, Draw* draw) const;

  const mjModel* nominal_;
  robots::Embodiment embodiment_;
  int base_body_;
  std::vector<int> robot_bodies_;   // the base's subtree
  std::vector<int> segments_;       // base + bodies that own a controlled joint
  std::vector<int> object_bodies_;  // bodies with a free joint outside the robot
  int table_geom_;
};

}  // namespace embody::collect
