#include "collect/randomizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "collect/config.h"
#include "sim/world.h"

namespace embody::collect {
namespace {

using nlohmann::json;
constexpr double kPi = 3.14159265358979323846;
// The arms' framed camera (none and light levels): degrees above the table, metres from the workspace.
constexpr double kArmElevation = 55, kArmDistance = 1.1, kArmAzimuth = 30, kArmSideElevation = 30;

// A range per level: {none, light, default, wide}; `none` is the nominal value.
struct Range {
  double nominal, lo, hi, wide_lo, wide_hi, light_lo, light_hi;
  double Draw(Level level, Rng* rng) const {
    switch (level) {
      case Level::kNone: return nominal;
      case Level::kLight: return rng->Uniform(light_lo, light_hi);
      case Level::kDefault: return rng->Uniform(lo, hi);
      case Level::kWide: break;
    }
    return rng->Uniform(wide_lo, wide_hi);
  }
};

std::array<double, 3> Normalized(std::array<double, 3> v) {
  const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  return {v[0] / n, v[1] / n, v[2] / n};
}

bool InSubtree(const mjModel* m, int body, int root) {
  for (int b = body; b > 0; b = m->body_parentid[b]) {
    if (b == root) return true;
  }
  return root == 0;
}

}  // namespace

Level ParseLevel(const std::string& text) {
  if (text == "none") return Level::kNone;
  if (text == "light") return Level::kLight;
  if (text == "default") return Level::kDefault;
  if (text == "wide") return Level::kWide;
  throw std::invalid_argument("randomization level must be none, light, default or wide, not \"" + text + "\"");
}

std::string LevelName(Level level) {
  switch (level) {
    case Level::kNone: return "none";
    case Level::kLight: return "light";
    case Level::kDefault: return "default";
    case Level::kWide: break;
  }
  return "wide";
}

const std::vector<std::string>& RandomizationConfig::Groups() {
  static const std::vector<std::string> groups = {"camera", "lighting", "materials", "dynamics", "embodiment", "objects"};
  return groups;
}

bool RandomizationConfig::Set(const std::string& group, Level level) {
  Level RandomizationConfig::*field = group == "camera"       ? &RandomizationConfig::camera
                                      : group == "lighting"   ? &RandomizationConfig::lighting
                                      : group == "materials"  ? &RandomizationConfig::materials
                                      : group == "dynamics"   ? &RandomizationConfig::dynamics
                                      : group == "embodiment" ? &RandomizationConfig::embodiment
                                      : group == "objects"    ? &RandomizationConfig::objects
                                                              : nullptr;
  if (!field) return false;
  this->*field = level;
  return true;
}

json RandomizationConfig::ToJson() const {
  return {{"camera", LevelName(camera)},     {"lighting", LevelName(lighting)},     {"materials", LevelName(materials)},
          {"dynamics", LevelName(dynamics)}, {"embodiment", LevelName(embodiment)}, {"objects", LevelName(objects)}};
}

json Draw::ToJson() const {
  json j;
  for (const auto& c : cameras) j["cameras"].push_back({{"position", c.position}, {"target", c.target}, {"fovy", c.fovy_deg}});
  for (const auto& l : lights) {
    j["lights"].push_back({{"active", l.active}, {"dir", l.dir}, {"diffuse", l.diffuse}, {"specular", l.specular}});
  }
  j["ambient"] = ambient;
  j["material_rgba"] = material_rgba;
  j["material_texture"] = material_texture;
  j["dynamics"] = {{"mass_scale", mass_scale},
                   {"damping_scale", damping_scale},
                   {"armature_scale", armature_scale},
                   {"friction_scale", friction_scale},
                   {"gain_scale", gain_scale}};
  if (payload_kg != 0) j["dynamics"]["payload_kg"] = payload_kg;  // written only when set: draws without one read as before
  j["embodiment"] = {{"segment_scale", segment_scale}, {"base_dx", base_dx}, {"base_dy", base_dy}, {"base_yaw", base_yaw}};
  j["objects"] = json::array();
  for (const auto& o : objects) {
    j["objects"].push_back({{"body", o.body}, {"x", o.x}, {"y", o.y}, {"yaw", o.yaw}, {"size_scale", o.size_scale}, {"mass_scale", o.mass_scale}});
  }
  return j;
}

Draw Draw::FromJson(const json& j) {
  try {
    Draw d;
    for (const auto& c : j.at("cameras")) {
      d.cameras.push_back(sim::Camera::LookAt(c.at("position").get<std::array<double, 3>>(), c.at("target").get<std::array<double, 3>>(),
                                              c.at("fovy").get<double>()));
    }
    for (const auto& l : j.at("lights")) {
      d.lights.push_back(
          {l.at("active").get<bool>(), l.at("dir").get<std::array<double, 3>>(), l.at("diffuse").get<double>(), l.at("specular").get<double>()});
    }
    d.ambient = j.at("ambient").get<double>();
    d.material_rgba = j.at("material_rgba").get<std::map<std::string, std::array<double, 4>>>();
    d.material_texture = j.at("material_texture").get<std::map<std::string, int>>();
    const json& dyn = j.at("dynamics");
    d.mass_scale = dyn.at("mass_scale");
    d.damping_scale = dyn.at("damping_scale");
    d.armature_scale = dyn.at("armature_scale");
    d.friction_scale = dyn.at("friction_scale");
    d.gain_scale = dyn.at("gain_scale");
    d.payload_kg = dyn.value("payload_kg", 0.0);
    const json& emb = j.at("embodiment");
    d.segment_scale = emb.at("segment_scale").get<std::vector<double>>();
    d.base_dx = emb.at("base_dx");
    d.base_dy = emb.at("base_dy");
    d.base_yaw = emb.at("base_yaw");
    for (const auto& o : j.at("objects")) {
      d.objects.push_back({o.at("body"), o.at("x"), o.at("y"), o.at("yaw"), o.at("size_scale"), o.at("mass_scale")});
    }
    return d;
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("randomization record is incomplete: ") + e.what());
  }
}

SceneRandomizer::SceneRandomizer(const mjModel* nominal, const robots::Embodiment& embodiment) : nominal_(nominal), embodiment_(embodiment) {
  base_body_ = sim::RequireId(nominal, mjOBJ_BODY, embodiment.base_body);
  table_geom_ = mj_name2id(nominal, mjOBJ_GEOM, "table");
  segments_.push_back(base_body_);
  for (int b = 1; b < nominal->nbody; ++b) {
    if (InSubtree(nominal, b, base_body_)) {
      robot_bodies_.push_back(b);
      for (const auto& joint : embodiment.joints) {
        const int j = sim::RequireId(nominal, mjOBJ_JOINT, joint);
        if (nominal->jnt_bodyid[j] == b && std::find(segments_.begin(), segments_.end(), b) == segments_.end()) {
          segments_.push_back(b);
        }
      }
    } else if (nominal->body_jntnum[b] == 1 && nominal->jnt_type[nominal->body_jntadr[b]] == mjJNT_FREE) {
      object_bodies_.push_back(b);
    }
  }
}

std::size_t SceneRandomizer::LongestSegment() const {
  std::size_t best = 0;
  double longest = -1;
  for (std::size_t s = 0; s < segments_.size(); ++s) {
    for (int child = segments_[s] + 1; child < nominal_->nbody; ++child) {
      if (nominal_->body_parentid[child] != segments_[s]) continue;
      const double* p = nominal_->body_pos + 3 * child;
      const double length = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
      if (length > longest) longest = length, best = s;
    }
  }
  return best;
}

void SceneRandomizer::AddPayload(double kg, mjModel* m) const {
  if (kg < 0) throw CollectError("a payload must be >= 0 kg, not " + std::to_string(kg));
  if (embodiment_.ee_site.empty()) throw CollectError(embodiment_.name + " has no end-effector site to carry a payload");
  const int site = sim::RequireId(m, mjOBJ_SITE, embodiment_.ee_site);
  const int b = m->site_bodyid[site];
  // The body's inertial frame stays where it is (its principal axes kept); the load is a point mass at
  // the site's offset from it plus a 3 cm sphere's own inertia, its off-axis terms dropped.
  mjtNum offset[3], local[3], quat_inv[4];
  for (int k = 0; k < 3; ++k) offset[k] = m->site_pos[3 * site + k] - m->body_ipos[3 * b + k];
  mju_negQuat(quat_inv, m->body_iquat + 4 * b);
  mju_rotVecQuat(local, offset, quat_inv);
  const double m0 = m->body_mass[b], total = m0 + kg, sphere = 0.4 * kg * 0.03 * 0.03;
  mjtNum shift[3];
  for (int k = 0; k < 3; ++k) shift[k] = local[k] * kg / total;  // the new centre of mass, in the inertial frame
  for (int k = 0; k < 3; ++k) {
    const int a = (k + 1) % 3, c = (k + 2) % 3;
    const double d0 = shift[a] * shift[a] + shift[c] * shift[c];
    const double d1 = (local[a] - shift[a]) * (local[a] - shift[a]) + (local[c] - shift[c]) * (local[c] - shift[c]);
    m->body_inertia[3 * b + k] += m0 * d0 + kg * d1 + sphere;
  }
  mjtNum world_shift[3];
  mju_rotVecQuat(world_shift, shift, m->body_iquat + 4 * b);
  for (int k = 0; k < 3; ++k) m->body_ipos[3 * b + k] += world_shift[k];
  m->body_mass[b] = total;
}

double SceneRandomizer::TableTop(const mjModel* m) const {
  if (table_geom_ < 0) return 0.0;
  return m->geom_pos[3 * table_geom_ + 2] + m->geom_size[3 * table_geom_ + 2];
}

double SceneRandomizer::ObjectHalfHeight(const mjModel* m, int body) const {
  const int g = m->body_geomadr[body];
  switch (m->geom_type[g]) {
    case mjGEOM_SPHERE: return m->geom_size[3 * g];
    case mjGEOM_CYLINDER:
    case mjGEOM_CAPSULE: return m->geom_size[3 * g + 1] + (m->geom_type[g] == mjGEOM_CAPSULE ? m->geom_size[3 * g] : 0);
    default: return m->geom_size[3 * g + 2];
  }
}

Draw SceneRandomizer::Sample(const RandomizationConfig& config, int num_cameras, Rng* rng) const {
  Draw draw;
  SampleCameras(config, num_cameras, rng, &draw);
  SampleLights(config, rng, &draw);
  SampleMaterials(config, rng, &draw);
  SampleBody(config, rng, &draw);
  SampleObjects(config, rng, &draw);
  return draw;
}

void SceneRandomizer::SampleCameras(const RandomizationConfig& config, int num_cameras, Rng* rng, Draw* draw) const {
  const bool humanoid = embodiment_.kind == robots::EmbodimentKind::kHumanoid;
  // Cameras orbit the workspace: azimuth around +x (the side facing the robot), elevation, distance.
  // `none` and `light` keep the camera near a view framed on the workspace (table, objects and the arm
  // fill most of the image; objects are 3-5 px wide at 64 px); `default` and `wide` orbit it.
  const bool framed = config.camera == Level::kNone || config.camera == Level::kLight;
  const std::array<double, 3> center = humanoid ? std::array<double, 3>{0.0, 0.0, 0.9}
                                       : framed ? std::array<double, 3>{0.33, 0.0, 0.56}
                                                : std::array<double, 3>{0.45, 0.0, 0.55};
  // {nominal, default lo/hi, wide lo/hi, light lo/hi}
  const Range azimuth{0, -50, 50, -100, 100, -6, 6}, fovy{45, 40, 55, 35, 65, 43, 47};
  const Range jitter{0, -0.05, 0.05, -0.1, 0.1, -0.02, 0.02};
  const Range elevation = humanoid ? Range{15, 5, 30, 0, 45, 12, 18} : Range{kArmElevation, 20, 50, 10, 65, kArmElevation - 4, kArmElevation + 4};
  const Range distance =
      humanoid ? Range{2.3, 2.0, 2.6, 1.7, 3.2, 2.25, 2.35} : Range{kArmDistance, 1.15, 1.6, 0.9, 2.0, kArmDistance - 0.04, kArmDistance + 0.04};
  // A framed arm's second camera looks from the robot's right, lower (30 degrees above the table,
  // 90 degrees of azimuth from the first): what moves along the first camera's line of sight (toward
  // it and up) moves across this one's image. Further cameras look from 35, 70, ... degrees to either
  // side of the first.
  const Range side_elevation{kArmSideElevation, 20, 50, 10, 65, kArmSideElevation - 4, kArmSideElevation + 4};
  for (int c = 0; c < num_cameras; ++c) {
    const bool arm_side = framed && !humanoid && c == 1;
    const double side = !framed || humanoid ? 0.0 : arm_side ? kArmAzimuth - 90.0 : kArmAzimuth + 35.0 * (c / 2) * (c % 2 == 1 ? 1 : -1);
    const double az = (azimuth.Draw(config.camera, rng) + side) * kPi / 180;
    const double el = (arm_side ? side_elevation : elevation).Draw(config.camera, rng) * kPi / 180;
    const double dist = distance.Draw(config.camera, rng);
    std::array<double, 3> target = center;
    for (double& t : target) t += jitter.Draw(config.camera, rng);
    const std::array<double, 3> position = {target[0] + dist * std::cos(el) * std::cos(az), target[1] + dist * std::cos(el) * std::sin(az),
                                            target[2] + dist * std::sin(el)};
    draw->cameras.push_back(sim::Camera::LookAt(position, target, fovy.Draw(config.camera, rng)));
  }
}

void SceneRandomizer::SampleLights(const RandomizationConfig& config, Rng* rng, Draw* draw) const {
  const mjModel* m = nominal_;
  // Lighting: direction jitter, intensities, and whether the non-key lights are on.
  const Range dir_jitter{0, -0.3, 0.3, -0.8, 0.8, -0.1, 0.1}, diffuse{0.6, 0.4, 0.8, 0.2, 1.0, 0.5, 0.7};
  const Range specular{0.2, 0.05, 0.3, 0.0, 0.5, 0.15, 0.25}, ambient{0.3, 0.2, 0.4, 0.05, 0.6, 0.25, 0.35};
  for (int l = 0; l < m->nlight; ++l) {
    LightDraw light;
    for (int k = 0; k < 3; ++k) light.dir[k] = m->light_dir[3 * l + k] + dir_jitter.Draw(config.lighting, rng);
    light.dir = Normalized(light.dir);
    light.diffuse = l == 0 || config.lighting == Level::kNone ? diffuse.Draw(config.lighting, rng) : 0.5 * diffuse.Draw(config.lighting, rng);
    light.specular = specular.Draw(config.lighting, rng);
    light.active = l == 0 || config.lighting == Level::kNone ||
                   (config.lighting == Level::kLight || rng->Bernoulli(config.lighting == Level::kWide ? 0.5 : 0.7));
    if (config.lighting == Level::kNone) {
      for (int k = 0; k < 3; ++k) light.dir[k] = m->light_dir[3 * l + k];
      light.diffuse = m->light_diffuse[3 * l];
      light.specular = m->light_specular[3 * l];
    }
    draw->lights.push_back(light);
  }
  draw->ambient = config.lighting == Level::kNone ? m->vis.headlight.ambient[0] : ambient.Draw(config.lighting, rng);
}

void SceneRandomizer::SampleMaterials(const RandomizationConfig& config, Rng* rng, Draw* draw) const {
  const mjModel* m = nominal_;
  // Materials: colours jittered (default) or redrawn (wide); textured materials may swap texture.
  for (int i = 0; i < m->nmat; ++i) {
    const std::string name = mj_id2name(m, mjOBJ_MATERIAL, i);
    std::array<double, 4> rgba;
    for (int k = 0; k < 4; ++k) rgba[k] = m->mat_rgba[4 * i + k];
    if (config.materials == Level::kDefault || config.materials == Level::kLight) {
      const double amount = config.materials == Level::kLight ? 0.06 : 0.15;  // light: a palette near the nominal colours
      for (int k = 0; k < 3; ++k) rgba[k] = std::clamp(rgba[k] + rng->Uniform(-amount, amount), 0.02, 1.0);
    } else if (config.materials == Level::kWide) {
      for (int k = 0; k < 3; ++k) rgba[k] = rng->Uniform(0.05, 0.95);
    }
    draw->material_rgba[name] = rgba;
    int texture = m->mat_texid[i];
    const double swap = config.materials == Level::kWide ? 0.6 : config.materials == Level::kDefault ? 0.3 : 0.0;
    if (texture >= 0 && swap > 0 && rng->Bernoulli(swap)) {
      texture = rng->Int(-1, m->ntex - 1);  // any texture of the scene, or none
    }
    draw->material_texture[name] = texture;
  }
}

// Dynamics (mass, damping, armature, friction, gains) and embodiment (segment lengths, base pose).
void SceneRandomizer::SampleBody(const RandomizationConfig& config, Rng* rng, Draw* draw) const {
  const bool humanoid = embodiment_.kind == robots::EmbodimentKind::kHumanoid;
  const Range mass{1, 0.9, 1.1, 0.75, 1.25, 0.95, 1.05}, friction{1, 0.8, 1.2, 0.5, 1.5, 0.9, 1.1};
  draw->mass_scale = mass.Draw(config.dynamics, rng);
  draw->damping_scale = mass.Draw(config.dynamics, rng);
  draw->armature_scale = mass.Draw(config.dynamics, rng);
  draw->friction_scale = friction.Draw(config.dynamics, rng);
  draw->gain_scale = mass.Draw(config.dynamics, rng);

  const Range segment{1, 0.95, 1.05, 0.9, 1.1, 0.98, 1.02}, shift{0, -0.03, 0.03, -0.06, 0.06, -0.01, 0.01};
  const Range yaw{0, -0.1, 0.1, -0.25, 0.25, -0.03, 0.03};
  for (size_t s = 0; s < segments_.size(); ++s) draw->segment_scale.push_back(segment.Draw(config.embodiment, rng));
  draw->base_dx = humanoid ? 0 : shift.Draw(config.embodiment, rng);
  draw->base_dy = humanoid ? 0 : shift.Draw(config.embodiment, rng);
  draw->base_yaw = yaw.Draw(config.embodiment, rng);
}

void SceneRandomizer::SampleObjects(const RandomizationConfig& config, Rng* rng, Draw* draw) const {
  const mjModel* m = nominal_;
  // Objects: pose on the table (kept apart), size, mass.
  const Range size{1, 0.9, 1.1, 0.7, 1.3, 0.95, 1.05}, object_mass{1, 0.8, 1.2, 0.5, 2.0, 0.9, 1.1};
  for (int b : object_bodies_) {
    ObjectDraw o;
    o.body = mj_id2name(m, mjOBJ_BODY, b);
    std::tie(o.x, o.y) = NominalPlace(b);
    if (config.objects != Level::kNone) {
      PlaceApart(config.objects, b, draw->objects, &o, rng);
      o.yaw = rng->Uniform(-kPi, kPi);
    }
    o.size_scale = size.Draw(config.objects, rng);
    o.mass_scale = object_mass.Draw(config.objects, rng);
    draw->objects.push_back(o);
  }
}

std::pair<double, double> SceneRandomizer::NominalPlace(int b) const {
  const int adr = nominal_->jnt_qposadr[nominal_->body_jntadr[b]];
  return {nominal_->qpos0[adr], nominal_->qpos0[adr + 1]};
}

void SceneRandomizer::PlaceApart(Level level, int b, const std::vector<ObjectDraw>& others, ObjectDraw* o, Rng* rng) const {
  const bool humanoid = embodiment_.kind == robots::EmbodimentKind::kHumanoid;
  const auto [x0, y0] = NominalPlace(b);
  const double spread = humanoid ? 0.1 : 0.0;
  // `light` keeps the objects in the middle of the framed view.
  const bool light = level == Level::kLight;
  for (int tries = 0; tries < 50; ++tries) {
    o->x = humanoid ? x0 + rng->Uniform(-spread, spread) : light ? rng->Uniform(0.42, 0.65) : rng->Uniform(0.4, 0.7);
    o->y = humanoid ? y0 + rng->Uniform(-spread, spread) : light ? rng->Uniform(-0.2, 0.2) : rng->Uniform(-0.25, 0.25);
    bool apart = true;
    for (const auto& other : others) apart = apart && (&other == o || std::hypot(other.x - o->x, other.y - o->y) > 0.12);
    if (apart) break;
  }
}

void SceneRandomizer::MoveObject(const RandomizationConfig& config, std::size_t index, double min_move, Draw* draw, Rng* rng) const {
  if (index >= draw->objects.size() || index >= object_bodies_.size()) throw std::out_of_range("MoveObject: no object " + std::to_string(index));
  if (config.objects == Level::kNone) return;  // the objects stand where the model puts them
  ObjectDraw& o = draw->objects[index];
  const double x = o.x, y = o.y;
  for (int tries = 0; tries < 20; ++tries) {
    PlaceApart(config.objects, object_bodies_[index], draw->objects, &o, rng);
    if (std::hypot(o.x - x, o.y - y) >= min_move) break;
  }
  o.yaw = rng->Uniform(-kPi, kPi);
}

void SceneRandomizer::ApplyToModel(const Draw& draw, mjModel* m) const {
  mj_copyModel(m, nominal_);
  for (size_t l = 0; l < draw.lights.size() && static_cast<int>(l) < m->nlight; ++l) {
    const LightDraw& light = draw.lights[l];
    m->light_active[l] = light.active ? 1 : 0;
    for (int k = 0; k < 3; ++k) {
      m->light_dir[3 * l + k] = light.dir[k];
      m->light_diffuse[3 * l + k] = static_cast<float>(light.diffuse);
      m->light_specular[3 * l + k] = static_cast<float>(light.specular);
    }
  }
  for (int k = 0; k < 3; ++k) m->vis.headlight.ambient[k] = static_cast<float>(draw.ambient);
  for (const auto& [name, rgba] : draw.material_rgba) {
    const int i = mj_name2id(m, mjOBJ_MATERIAL, name.c_str());
    if (i < 0) continue;
    for (int k = 0; k < 4; ++k) m->mat_rgba[4 * i + k] = static_cast<float>(rgba[k]);
    const auto tex = draw.material_texture.find(name);
    if (tex != draw.material_texture.end() && tex->second < m->ntex) m->mat_texid[i] = tex->second;
  }

  // Dynamics of the robot; friction everywhere.
  for (int b : robot_bodies_) {
    m->body_mass[b] *= draw.mass_scale;
    for (int k = 0; k < 3; ++k) m->body_inertia[3 * b + k] *= draw.mass_scale;
  }
  for (int j = 0; j < m->njnt; ++j) {
    if (std::find(robot_bodies_.begin(), robot_bodies_.end(), m->jnt_bodyid[j]) == robot_bodies_.end()) continue;
    const int dof = m->jnt_dofadr[j];
    m->dof_damping[dof] *= draw.damping_scale;
    m->dof_armature[dof] *= draw.armature_scale;
  }
  for (int g = 0; g < m->ngeom; ++g) m->geom_friction[3 * g] *= draw.friction_scale;
  if (draw.payload_kg != 0) AddPayload(draw.payload_kg, m);
  for (int a = 0; a < m->nu; ++a) {
    m->actuator_gainprm[a * mjNGAIN] *= draw.gain_scale;
    m->actuator_biasprm[a * mjNBIAS + 1] *= draw.gain_scale;
  }

  // Link lengths: a segment's scale stretches its own geoms and the offsets of its child bodies.
  for (size_t s = 0; s < segments_.size() && s < draw.segment_scale.size(); ++s) {
    const int body = segments_[s];
    const double scale = draw.segment_scale[s];
    for (int child = body + 1; child < m->nbody; ++child) {
      if (m->body_parentid[child] != body) continue;
      for (int k = 0; k < 3; ++k) m->body_pos[3 * child + k] *= scale;
    }
    for (int g = m->body_geomadr[body]; g < m->body_geomadr[body] + m->body_geomnum[body]; ++g) {
      for (int k = 0; k < 3; ++k) m->geom_pos[3 * g + k] *= scale;
      if (m->geom_type[g] == mjGEOM_CAPSULE || m->geom_type[g] == mjGEOM_CYLINDER) {
        m->geom_size[3 * g + 1] *= scale;
        m->geom_rbound[g] = m->geom_size[3 * g] + m->geom_size[3 * g + 1] + (m->geom_type[g] == mjGEOM_CAPSULE ? m->geom_size[3 * g] : 0);
      }
    }
  }
  // A longer humanoid leg would push its feet into the floor: raise the pinned pelvis by the
  // longest leg's extension (hip-to-knee plus knee-to-ankle offsets).
  if (embodiment_.kind == robots::EmbodimentKind::kHumanoid) {
    double raise = 0;
    for (const std::string side : {"right", "left"}) {
      double extension = 0;
      for (const std::string part : {"_thigh", "_shin"}) {
        const int body = mj_name2id(m, mjOBJ_BODY, ("humanoid_" + side + part).c_str());
        if (body < 0 || body + 1 >= m->nbody) continue;
        extension += std::abs(m->body_pos[3 * (body + 1) + 2]) - std::abs(nominal_->body_pos[3 * (body + 1) + 2]);
      }
      raise = std::max(raise, extension);
    }
    m->body_pos[3 * base_body_ + 2] += raise;
  }
  m->body_pos[3 * base_body_] += draw.base_dx;
  m->body_pos[3 * base_body_ + 1] += draw.base_dy;
  double yaw_quat[4] = {std::cos(draw.base_yaw / 2), 0, 0, std::sin(draw.base_yaw / 2)}, rotated[4];
  mju_mulQuat(rotated, yaw_quat, nominal_->body_quat + 4 * base_body_);
  for (int k = 0; k < 4; ++k) m->body_quat[4 * base_body_ + k] = rotated[k];

  for (const auto& o : draw.objects) {
    const int b = mj_name2id(m, mjOBJ_BODY, o.body.c_str());
    if (b < 0) continue;
    m->body_mass[b] *= o.mass_scale;
    for (int k = 0; k < 3; ++k) m->body_inertia[3 * b + k] *= o.mass_scale * o.size_scale * o.size_scale;
    for (int g = m->body_geomadr[b]; g < m->body_geomadr[b] + m->body_geomnum[b]; ++g) {
      for (int k = 0; k < 3; ++k) m->geom_size[3 * g + k] *= o.size_scale;
      m->geom_rbound[g] *= o.size_scale;
    }
  }
}

void SceneRandomizer::PlaceObjects(const Draw& draw, const mjModel* m, mjData* d) const {
  const double top = TableTop(m);
  for (const auto& o : draw.objects) {
    const int b = mj_name2id(m, mjOBJ_BODY, o.body.c_str());
    if (b < 0) continue;
    mjtNum* q = d->qpos + m->jnt_qposadr[m->body_jntadr[b]];
    q[0] = o.x;
    q[1] = o.y;
    q[2] = top + ObjectHalfHeight(m, b) + 0.001;
    q[3] = std::cos(o.yaw / 2);
    q[4] = 0;
    q[5] = 0;
    q[6] = std::sin(o.yaw / 2);
    mjtNum* v = d->qvel + m->jnt_dofadr[m->body_jntadr[b]];
    std::fill(v, v + 6, 0.0);
  }
}

}  // namespace embody::collect
