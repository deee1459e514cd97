#include "collect/config.h"

#include "sim/atomic_file.h"

#include <fstream>

#include <thread>

#include "robots/embodiment.h"

namespace embody::collect {

void CollectConfig::Validate() const {
  if (episodes <= 0) throw CollectError("--episodes must be positive, got " + std::to_string(episodes));
  if (steps < 2 || steps > 100000) throw CollectError("--steps must be in 2..100000, got " + std::to_string(steps));
  if (image_size < 16 || image_size > 256) {
    throw CollectError("--image-size must be in 16..256, got " + std::to_string(image_size));
  }
  if (cameras < 1 || cameras > 16) throw CollectError("--cameras must be in 1..16, got " + std::to_string(cameras));
  if (layouts_per_scene < 1 || layouts_per_scene > 64) {
    throw CollectError("--layouts-per-scene must be in 1..64, got " + std::to_string(layouts_per_scene));
  }
  if (layout_change != "all" && layout_change != "one") throw CollectError("--layout-change must be all or one, got " + layout_change);
  if (layout_change != "all" && layouts_per_scene == 1) throw CollectError("--layout-change needs --layouts-per-scene 2 or more");
  if (group_actions != "own" && group_actions != "shared") throw CollectError("--group-actions must be own or shared, got " + group_actions);
  if (group_actions != "own" && layouts_per_scene == 1) throw CollectError("--group-actions shared needs --layouts-per-scene 2 or more");
  if (control_hz < 0 || control_hz > 500) throw CollectError("--control-hz must be in (0, 500]");
  if (workers < 0 || workers > 256) throw CollectError("--workers must be in 0..256 (0 = all cores)");
  if (shard_count < 1 || shard_index < 0 || shard_index >= shard_count) {
    throw CollectError("--shard must be I/N with 0 <= I < N");
  }
  if (resume && overwrite) throw CollectError("--resume and --overwrite exclude each other");
}

nlohmann::json CollectConfig::Identity() const {
  nlohmann::json j = {{"robot", robots::RobotRecord(robot)},  // a descriptor by its absolute path: found from any folder
                      {"task", task},
                      {"episodes", episodes},
                      {"steps", steps},
                      {"control_hz", control_hz},
                      {"image_size", image_size},
                      {"cameras", cameras},
                      {"seed", seed},
                      {"randomization", randomization.ToJson()},
                      {"shard", std::to_string(shard_index) + "/" + std::to_string(shard_count)}};
  // Only when set: the identity of every dataset collected before the option is unchanged.
  if (layouts_per_scene != 1) j["layouts_per_scene"] = layouts_per_scene;
  if (layout_change != "all") j["layout_change"] = layout_change;
  if (group_actions != "own") j["group_actions"] = group_actions;
  if (eye_in_hand) j["eye_in_hand"] = true;
  return j;
}

CollectConfig CollectConfig::FromIdentity(const nlohmann::json& identity) {
  // The identity's keys are options UpdateFromJson reads; here every one of them must be present.
  for (const char* key : {"robot", "task", "episodes", "steps", "control_hz", "image_size", "cameras", "seed", "randomization"}) {
    if (!identity.is_object() || !identity.contains(key)) throw CollectError(std::string("embody_config lacks the option \"") + key + "\"");
  }
  CollectConfig c;
  try {
    c.UpdateFromJson(identity);
  } catch (const CollectError& e) {
    throw CollectError(std::string("embody_config: ") + e.what());
  }
  return c;
}

std::filesystem::path CollectConfig::OutPath() const {
  if (!out.empty()) return out;
  std::string stem = std::filesystem::path(robot).stem().string();
  try {
    stem = robots::RobotName(robot);  // the name a descriptor declares: adapt's default data/<name>.h5
  } catch (const std::exception&) {
    // an unreadable descriptor is refused when the collection starts, naming the file
  }
  if (shard_count > 1) stem += ".shard" + std::to_string(shard_index) + "of" + std::to_string(shard_count);
  return std::filesystem::path("data") / (stem + ".h5");
}

int CollectConfig::WorkerCount() const {
  if (workers > 0) return workers;
  return std::max(1u, std::thread::hardware_concurrency());
}

void ParseShard(const std::string& text, int* index, int* count) {
  const auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    *index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("junk");
    *count = std::stoi(text.substr(slash + 1), &used);
    if (used != text.size() - slash - 1) throw std::invalid_argument("junk");
  } catch (const std::exception&) {
    throw CollectError("--shard must look like I/N (e.g. 0/4), got \"" + text + "\"");
  }
  if (*count < 1 || *index < 0 || *index >= *count) throw CollectError("--shard " + text + ": need 0 <= I < N");
}

void CollectConfig::UpdateFromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw CollectError("--config file must hold a JSON object");
  for (const auto& [raw_key, value] : j.items()) {
    std::string key = raw_key;
    for (char& c : key) c = c == '-' ? '_' : c;
    try {
      if (key == "robot")
        robot = value.get<std::string>();
      else if (key == "task")
        task = value.get<std::string>();
      else if (key == "episodes")
        episodes = value.get<std::int64_t>();
      else if (key == "steps")
        steps = value.get<int>();
      else if (key == "control_hz")
        control_hz = value.get<double>();
      else if (key == "image_size")
        image_size = value.get<int>();
      else if (key == "cameras")
        cameras = value.get<int>();
      else if (key == "eye_in_hand")
        eye_in_hand = value.get<bool>();
      else if (key == "layouts_per_scene")
        layouts_per_scene = value.get<int>();
      else if (key == "layout_change")
        layout_change = value.get<std::string>();
      else if (key == "group_actions")
        group_actions = value.get<std::string>();
      else if (key == "workers")
        workers = value.get<int>();
      else if (key == "seed")
        seed = value.get<std::uint64_t>();
      else if (key == "out")
        out = value.get<std::string>();
      else if (key == "shard") {
        const std::string text = value.get<std::string>();
        if (text != "merged") ParseShard(text, &shard_index, &shard_count);  // a merged dataset's identity: all shards
      } else if (key == "resume")
        resume = value.get<bool>();
      else if (key == "overwrite")
        overwrite = value.get<bool>();
      else if (key == "randomize")
        randomization = RandomizationConfig::All(ParseLevel(value.get<std::string>()));
      else if (key.rfind("randomize_", 0) == 0) {
        if (!randomization.Set(key.substr(10), ParseLevel(value.get<std::string>())))
          throw CollectError("unknown option \"" + raw_key + "\" in --config file");
      } else if (key == "randomization") {  // Identity()'s form: {"camera": "light", ...}
        if (!value.is_object()) throw CollectError("option \"randomization\" in --config file must map groups to levels");
        for (const auto& [group, level] : value.items()) {
          if (!randomization.Set(group, ParseLevel(level.get<std::string>())))
            throw CollectError("unknown randomization group \"" + group + "\" in --config file");
        }
      } else {
        throw CollectError("unknown option \"" + raw_key + "\" in --config file");
      }
    } catch (const nlohmann::json::exception& e) {
      throw CollectError("option \"" + raw_key + "\" in --config file has the wrong type: " + e.what());
    } catch (const std::invalid_argument& e) {
      throw CollectError("option \"" + raw_key + "\" in --config file: " + e.what());
    }
  }
}

void WriteJsonFileAtomically(const std::filesystem::path& path, const nlohmann::json& j) {
  sim::WriteFileAtomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    out.close();
    if (!out) throw CollectError("cannot write " + path.string());
  });
}

}  // namespace embody::collect
