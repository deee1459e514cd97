#include "collect/inspect.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <set>

#include "collect/collector.h"
#include "collect/dataset.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;

// printf into a string.
void Append(std::string* out, const char* format, ...) {
  va_list args;
  va_start(args, format);
  char line[1024];
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  *out += line;
}

// Flattens the numbers of a JSON value into "path" -> (min, max), arrays folded into "[]".
void CollectRanges(const nlohmann::json& j, const std::string& path, std::map<std::string, std::pair<double, double>>* out) {
  if (j.is_number()) {
    const double v = j.get<double>();
    auto it = out->find(path);
    if (it == out->end()) {
      (*out)[path] = {v, v};
    } else {
      it->second.first = std::min(it->second.first, v);
      it->second.second = std::max(it->second.second, v);
    }
  } else if (j.is_boolean()) {
    CollectRanges(j.get<bool>() ? 1 : 0, path, out);
  } else if (j.is_array()) {
    for (const auto& e : j) CollectRanges(e, path + "[]", out);
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items()) CollectRanges(v, path.empty() ? k : path + "." + k, out);
  }
}

}  // namespace

std::string DescribeDataset(const std::filesystem::path& file) {
  std::string out;
  const Dataset ds(file);
  ds.CheckAll();  // a damaged episode is named, not summarized
  std::map<std::string, std::pair<int, int>> tasks;
  std::set<std::string> embodiments;
  std::map<std::string, std::pair<double, double>> ranges;
  std::int64_t frames = 0, attempts = 0;
  int successes = 0;
  for (const auto& demo : ds.demos()) {
    frames += ds.NumSamples(demo);
    const bool success = ds.IntAttr(demo, "success") != 0;
    auto& t = tasks[ds.StringAttr(demo, "task")];
    t.first += success;
    ++t.second;
    successes += success;
    attempts += ds.IntAttr(demo, "attempts") - 1;
    embodiments.insert(ds.StringAttr(demo, "embodiment"));
    CollectRanges(nlohmann::json::parse(ds.StringAttr(demo, "randomization")), "", &ranges);
  }
  const size_t n = ds.demos().size();
  Append(&out, "file:        %s\n", file.string().c_str());
  Append(&out, "episodes:    %zu (train %zu, valid %zu)\n", n, ds.Mask("train").size(), ds.Mask("valid").size());
  // The held-out episodes (what evaluations use, and what to look at in the viewer), the first few.
  const std::vector<std::string> valid = ds.Mask("valid");
  std::string held_out;
  for (size_t i = 0; i < valid.size() && i < 8; ++i) held_out += (i ? ", " : "") + valid[i];
  if (valid.size() > 8) held_out += ", ... (" + std::to_string(valid.size()) + " in all)";
  Append(&out, "held out:    %s\n", held_out.empty() ? "(none: collect at least 10 episodes)" : held_out.c_str());
  Append(&out, "frames:      %lld (per camera; /data total attr %lld)\n", static_cast<long long>(frames), static_cast<long long>(ds.total()));
  std::string names;
  for (const auto& e : embodiments) names += (names.empty() ? "" : ", ") + e;
  Append(&out, "embodiment:  %s\n", names.empty() ? "(none)" : names.c_str());
  if (!ds.config().is_null()) Append(&out, "options:     %s\n", ds.config().dump().c_str());
  Append(&out, "success:     %d/%zu (%.0f%%); unstable draws redrawn: %lld\n", successes, n, n ? 100.0 * successes / n : 0.0,
         static_cast<long long>(attempts));
  Append(&out, "tasks:\n");
  for (const auto& [task, c] : tasks) {
    Append(&out, "  %-8s %5d episodes, success %.0f%%\n", task.c_str(), c.second, 100.0 * c.first / std::max(1, c.second));
  }
  Append(&out, "randomization ranges seen (min .. max over episodes):\n");
  for (const auto& [key, r] : ranges) {
    if (key.rfind("material_rgba", 0) == 0 || key.rfind("material_texture", 0) == 0) continue;  // summarized below
    Append(&out, "  %-36s %9.4f .. %9.4f\n", key.c_str(), r.first, r.second);
  }
  int materials = 0;
  for (const auto& [key, r] : ranges) materials += key.rfind("material_rgba", 0) == 0;
  Append(&out, "  material colours: %d materials varied (see each episode's randomization attribute)\n", materials);
  return out;
}

std::int64_t MergeShards(const std::filesystem::path& out, const std::vector<std::filesystem::path>& shards, bool overwrite) {
  const sim::OutputLock lock = LockOutput(out, "simcollect merge");
  if (fs::exists(out) && !overwrite) throw CollectError(out.string() + " already exists; pass --overwrite to replace it");
  std::map<std::int64_t, EpisodeEntry> episodes;
  nlohmann::json config, env_args, meta;
  const fs::path out_dir = fs::absolute(out).parent_path();
  for (const auto& shard : shards) {
    const Dataset ds(shard);
    ds.CheckAll();
    nlohmann::json c = ds.config();
    if (c.is_null()) throw CollectError(shard.string() + " is not an Embody dataset (no embody_config)");
    c.erase("shard");
    if (config.is_null()) {
      config = c;
      env_args = ds.env_args();
      meta = ds.meta();
    } else if (c != config) {
      throw CollectError(shard.string() + " was collected with other options than " + shards.front().string() + ": " + c.dump() + " vs " +
                         config.dump());
    }
    for (const auto& demo : ds.demos()) {
      const std::int64_t index = std::stoll(demo.substr(5));
      if (episodes.count(index)) throw CollectError(demo + " appears in more than one shard (" + shard.string() + ")");
      const auto [file, object] = ds.LinkTarget(demo);
      episodes[index] = {fs::relative(file, out_dir).string(), object, ds.NumSamples(demo)};
    }
  }
  config["shard"] = "merged";
  if (!fs::absolute(out).parent_path().empty()) fs::create_directories(fs::absolute(out).parent_path());
  WriteTopFile(out, episodes, env_args, config, meta);
  return static_cast<std::int64_t>(episodes.size());
}

}  // namespace embody::collect
