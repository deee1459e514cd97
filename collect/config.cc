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
  if (control_hz < 0 || control_hz > 500) throw CollectError("--control-hz must be in (0, 500]");
  if (workers < 0 || workers > 256) throw CollectError("--workers must be in 0..256 (0 = all cores)");
  if (shard_count < 1 || shard_index < 0 || shard_index >= shard_count) {
    throw CollectError("--shard must be I/N with 0 <= I < N");
  }
  if (resume && overwrite) throw CollectError("--resume and --overwrite exclude each other");
}

nlohmann::json CollectConfig::Identity() const {
  return {{"robot", robot},
          {"task", task},
          {"episodes", episodes},
          {"steps", steps},
          {"control_hz", control_hz},
          {"image_size", image_size},
          {"cameras", cameras},
          {"seed", seed},
          {"randomization", randomization.ToJson()},
          {"shard", std::to_string(shard_index) + "/" + std::to_string(shard_count)}};
}

CollectConfig CollectConfig::FromIdentity(const nlohmann::json& identity) {
  CollectConfig c;
  try {
    c.robot = identity.at("robot").get<std::string>();
    c.task = identity.at("task").get<std::string>();
    c.episodes = identity.at("episodes").get<std::int64_t>();
    c.steps = identity.at("steps").get<int>();
    c.control_hz = identity.at("control_hz").get<double>();
    c.image_size = identity.at("image_size").get<int>();
    c.cameras = identity.at("cameras").get<int>();
    c.seed = identity.at("seed").get<std::uint64_t>();
    const auto& r = identity.at("randomization");
    c.randomization.camera = ParseLevel(r.at("camera").get<std::string>());
    c.randomization.lighting = ParseLevel(r.at("lighting").get<std::string>());
    c.randomization.materials = ParseLevel(r.at("materials").get<std::string>());
    c.randomization.dynamics = ParseLevel(r.at("dynamics").get<std::string>());
    c.randomization.embodiment = ParseLevel(r.at("embodiment").get<std::string>());
    c.randomization.objects = ParseLevel(r.at("objects").get<std::string>());
    const std::string shard = identity.value("shard", std::string("0/1"));
    if (shard != "merged") ParseShard(shard, &c.shard_index, &c.shard_count);
  } catch (const nlohmann::json::exception& e) {
    throw CollectError(std::string("embody_config lacks or mistypes an option: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw CollectError(std::string("embody_config: ") + e.what());
  }
  return c;
}

std::filesystem::path CollectConfig::OutPath() const {
  if (!out.empty()) return out;
  std::string stem = std::filesystem::path(robot).stem().string();
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
      else if (key == "workers")
        workers = value.get<int>();
      else if (key == "seed")
        seed = value.get<std::uint64_t>();
      else if (key == "out")
        out = value.get<std::string>();
      else if (key == "shard")
        ParseShard(value.get<std::string>(), &shard_index, &shard_count);
      else if (key == "resume")
        resume = value.get<bool>();
      else if (key == "overwrite")
        overwrite = value.get<bool>();
      else if (key == "randomize")
        randomization = RandomizationConfig::All(ParseLevel(value.get<std::string>()));
      else if (key.rfind("randomize_", 0) == 0) {
        const std::string group = key.substr(10);
        const Level level = ParseLevel(value.get<std::string>());
        if (group == "camera")
          randomization.camera = level;
        else if (group == "lighting")
          randomization.lighting = level;
        else if (group == "materials")
          randomization.materials = level;
        else if (group == "dynamics")
          randomization.dynamics = level;
        else if (group == "embodiment")
          randomization.embodiment = level;
        else if (group == "objects")
          randomization.objects = level;
        else
          throw CollectError("unknown option \"" + raw_key + "\" in --config file");
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
