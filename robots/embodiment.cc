#include "robots/embodiment.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace embody::robots {
namespace {

using nlohmann::json;

const json& Require(const json& j, const char* key, const std::string& context) {
  auto it = j.find(key);
  if (it == j.end()) {
    throw EmbodimentError(context + ": missing required field \"" + key + "\"");
  }
  return *it;
}

template <typename T>
T Get(const json& j, const char* key, const std::string& context) {
  try {
    return Require(j, key, context).get<T>();
  } catch (const json::exception& e) {
    throw EmbodimentError(context + ": field \"" + key + "\" has the wrong type (" + e.what() + ")");
  }
}

template <typename T>
T GetOr(const json& j, const char* key, const T& fallback, const std::string& context) {
  return j.contains(key) ? Get<T>(j, key, context) : fallback;
}

}  // namespace

int Embodiment::action_dim() const { return kind == EmbodimentKind::kArm ? 7 : static_cast<int>(joints.size()); }

int Embodiment::JointForRole(const std::string& role) const {
  const auto mapped = roles.find(role);
  const std::string& joint = mapped == roles.end() ? role : mapped->second;
  const auto it = std::find(joints.begin(), joints.end(), joint);
  return it == joints.end() ? -1 : static_cast<int>(it - joints.begin());
}

std::vector<std::string> Embodiment::action_names() const {
  if (kind == EmbodimentKind::kArm) return {"dx", "dy", "dz", "drx", "dry", "drz", "gripper"};
  return joints;
}

Embodiment EmbodimentFromJson(const std::string& json_text, const std::filesystem::path& base_dir) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw EmbodimentError(std::string("embodiment descriptor is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw EmbodimentError("embodiment descriptor must be a JSON object");

  Embodiment e;
  e.name = Get<std::string>(j, "name", "embodiment descriptor");
  const std::string ctx = "embodiment \"" + e.name + "\"";
  const auto kind = Get<std::string>(j, "kind", ctx);
  if (kind == "arm") {
    e.kind = EmbodimentKind::kArm;
  } else if (kind == "humanoid") {
    e.kind = EmbodimentKind::kHumanoid;
  } else {
    throw EmbodimentError(ctx + ": \"kind\" must be \"arm\" or \"humanoid\", not \"" + kind + "\"");
  }
  std::filesystem::path mjcf = Get<std::string>(j, "mjcf", ctx);
  e.mjcf = std::filesystem::absolute(mjcf.is_absolute() ? mjcf : base_dir / mjcf).lexically_normal();
  e.base_body = Get<std::string>(j, "base_body", ctx);
  e.joints = Get<std::vector<std::string>>(j, "joints", ctx);
  if (e.joints.empty()) throw EmbodimentError(ctx + ": \"joints\" is empty");
  e.home = Get<std::vector<double>>(j, "home", ctx);
  if (e.home.size() != e.joints.size()) {
    throw EmbodimentError(ctx + ": \"home\" has " + std::to_string(e.home.size()) + " values for " + std::to_string(e.joints.size()) + " joints");
  }
  if (e.kind == EmbodimentKind::kArm) {
    e.ee_site = Get<std::string>(j, "ee_site", ctx);
    e.ee_sites = {e.ee_site};
    e.eye_in_hand_camera = GetOr<std::string>(j, "eye_in_hand_camera", "", ctx);
  } else {
    e.ee_sites = Get<std::vector<std::string>>(j, "ee_sites", ctx);
    if (e.ee_sites.empty()) throw EmbodimentError(ctx + ": \"ee_sites\" is empty (list the sites of interest, e.g. the hands)");
  }
  e.roles = GetOr<std::map<std::string, std::string>>(j, "roles", {}, ctx);
  for (const auto& [role, joint] : e.roles) {
    if (std::find(e.joints.begin(), e.joints.end(), joint) == e.joints.end()) {
      throw EmbodimentError(ctx + ": role \"" + role + "\" maps to \"" + joint + "\", which is not one of \"joints\"");
    }
  }
  e.gripper_actuator = GetOr<std::string>(j, "gripper_actuator", "", ctx);
  e.gripper_open = GetOr<double>(j, "gripper_open", e.gripper_open, ctx);
  e.gripper_closed = GetOr<double>(j, "gripper_closed", e.gripper_closed, ctx);
  e.control_hz = GetOr<double>(j, "control_hz", e.control_hz, ctx);
  if (!(e.control_hz > 0 && e.control_hz <= 1000)) {
    throw EmbodimentError(ctx + ": \"control_hz\" must be in (0, 1000]");
  }
  e.gravity_compensation = GetOr<bool>(j, "gravity_compensation", e.gravity_compensation, ctx);
  e.ik_damping = GetOr<double>(j, "ik_damping", e.ik_damping, ctx);
  if (j.contains("action_scale")) {
    const json& s = j["action_scale"];
    e.action_scale.position = GetOr<double>(s, "position", e.action_scale.position, ctx);
    e.action_scale.rotation = GetOr<double>(s, "rotation", e.action_scale.rotation, ctx);
    e.action_scale.joint = GetOr<double>(s, "joint", e.action_scale.joint, ctx);
  }
  return e;
}

Embodiment LoadEmbodimentFile(const std::filesystem::path& json_file) {
  std::ifstream in(json_file);
  if (!in) throw EmbodimentError("cannot open embodiment descriptor " + json_file.string());
  std::stringstream text;
  text << in.rdbuf();
  try {
    return EmbodimentFromJson(text.str(), std::filesystem::absolute(json_file).parent_path());
  } catch (const EmbodimentError& e) {
    throw EmbodimentError(json_file.string() + ": " + e.what());
  }
}

std::filesystem::path AssetsDir() {
  if (const char* env = std::getenv("EMBODY_ASSETS_DIR"); env != nullptr && *env != '\0') return env;
  return EMBODY_ASSETS_DIR;
}

std::vector<std::string> BuiltinEmbodimentNames() {
  std::vector<std::string> names;
  const auto dir = AssetsDir() / "embodiments";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool IsDescriptorPath(const std::string& name_or_path) { return name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json"; }

std::string RobotName(const std::string& name_or_path) {
  return IsDescriptorPath(name_or_path) ? LoadEmbodimentFile(name_or_path).name : name_or_path;
}

std::string RobotRecord(const std::string& name_or_path) {
  if (!IsDescriptorPath(name_or_path)) return name_or_path;
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(name_or_path, ec);
  return ec ? name_or_path : absolute.lexically_normal().string();
}

Embodiment FindEmbodiment(const std::string& name_or_path) {
  if (IsDescriptorPath(name_or_path)) {
    return LoadEmbodimentFile(name_or_path);
  }
  const auto names = BuiltinEmbodimentNames();
  if (std::find(names.begin(), names.end(), name_or_path) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw EmbodimentError("unknown robot \"" + name_or_path + "\"; known robots: " +
                          (known.empty() ? "(none found in " + AssetsDir().string() + ")" : known) + ", or a path to an embodiment .json file");
  }
  return LoadEmbodimentFile(AssetsDir() / "embodiments" / (name_or_path + ".json"));
}

}  // namespace embody::robots
