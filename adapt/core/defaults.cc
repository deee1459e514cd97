#include "adapt/core/defaults.h"

#include <cstdio>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapt/core/error.h"
#include "robots/embodiment.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;

// <dir>/metrics.json, or null when there is none or it does not parse (the model's own loader
// names a damaged folder; here it only means "no record").
nlohmann::json ModelMetrics(const fs::path& dir) {
  std::ifstream in(dir / "metrics.json");
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string StringOr(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

}  // namespace

RobotArg ResolveRobotArg(const std::string& arg, const std::string& model_dir) {
  if (robots::IsDescriptorPath(arg)) {
    try {
      return {robots::RobotName(arg), arg};
    } catch (const std::exception& e) {
      throw AdaptError(std::string("--embodiment: ") + e.what());
    }
  }
  const nlohmann::json given_model = model_dir.empty() ? nlohmann::json() : ModelMetrics(model_dir);
  std::string name = arg;
  if (name.empty()) name = StringOr(given_model, "embodiment");
  if (name.empty()) name = "franka";
  const auto builtins = robots::BuiltinEmbodimentNames();
  if (std::find(builtins.begin(), builtins.end(), name) != builtins.end()) return {name, name};
  const fs::path dir = model_dir.empty() ? fs::path("models") / name : fs::path(model_dir);
  const nlohmann::json metrics = model_dir.empty() ? ModelMetrics(dir) : given_model;
  const std::string recorded = StringOr(metrics, "robot");
  if (StringOr(metrics, "embodiment") == name && robots::IsDescriptorPath(recorded)) {
    std::error_code ec;
    if (!fs::exists(recorded, ec)) {
      throw AdaptError(dir.string() + " was trained on " + name + " described by " + recorded +
                       ", which is gone; pass the descriptor: --embodiment path/to/" + name + ".json");
    }
    return {name, recorded};
  }
  std::string known;
  for (const auto& b : builtins) known += (known.empty() ? "" : ", ") + b;
  throw AdaptError("unknown robot \"" + name + "\": not a built-in (" + known + ") and " + (dir / "metrics.json").string() +
                   " records no descriptor for it; pass yours: --embodiment path/to/" + name + ".json");
}

EncoderArg ResolveEncoderArg(const std::string& given, const std::string& model_dir) {
  if (!given.empty()) return {given, ""};
  std::error_code ec;
  if (!model_dir.empty()) {
    const std::string trained_on = StringOr(ModelMetrics(model_dir), "encoder");
    if (!trained_on.empty() && fs::is_regular_file(trained_on, ec)) return {trained_on, "the encoder " + model_dir + " was trained on"};
  }
  const fs::path standard = fs::path("models") / "encoder.pt";
  if (fs::is_regular_file(standard, ec)) return {standard.string(), ""};
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator("models", ec)) {
    if (entry.is_regular_file(ec) && entry.path().extension() == ".pt") found.push_back(entry.path().string());
  }
  std::sort(found.begin(), found.end());
  if (found.size() == 1) return {found[0], "the only encoder in models/"};
  if (found.empty()) {
    throw AdaptError(
        "no encoder: models/encoder.pt does not exist and models/ holds no other — run: pretrain --data data/<robot>.h5 "
        "(writes models/encoder.pt), or pass --encoder PATH");
  }
  std::string list;
  for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
  throw AdaptError("no models/encoder.pt, and models/ holds " + std::to_string(found.size()) + " encoders (" + list + "): pass --encoder PATH");
}

ModelArgs ResolveModelArgs(const std::string& program, const std::string& robot, const std::string& model_dir, const std::string& encoder) {
  ModelArgs a;
  a.robot = ResolveRobotArg(robot, model_dir);
  a.model_dir = model_dir.empty() ? "models/" + a.robot.name : model_dir;
  const EncoderArg chosen = ResolveEncoderArg(encoder, a.model_dir);
  a.encoder = chosen.path;
  if (!chosen.why.empty()) std::fprintf(stderr, "%s: --encoder %s (%s)\n", program.c_str(), a.encoder.c_str(), chosen.why.c_str());
  return a;
}

}  // namespace embody::adapt
