// simcollect: randomized, action-labeled trajectories of arms and humanoids to HDF5.
//   simcollect --robot franka --episodes 5000       collect (see --help for every option)
//   simcollect info FILE                            what a dataset holds
//   simcollect merge OUT SHARDS...                  join shard files (external links, no copying)
//   simcollect bench --robot franka                 physics, render and end-to-end speed
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "collect/collector.h"
#include "collect/dataset.h"
#include "collect/episode.h"

namespace {

using namespace embody;
using namespace embody::collect;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void AddCollectOptions(CLI::App* app, CollectConfig* c, std::map<std::string, std::string>* levels, std::string* shard,
                       std::string* config_file) {
  app->add_option("--robot", c->robot, "Robot: franka, ur5, humanoid, or an embodiment .json")->capture_default_str();
  app->add_option("--episodes", c->episodes, "Episodes to collect")->capture_default_str();
  app->add_option("--out", c->out, "Output HDF5 file (default data/<robot>.h5)");
  app->add_option("--task", c->task, "reach|push|pick|wander|mix (humanoid: reach|squat|turn|wave|wander|mix)")
      ->capture_default_str();
  app->add_option("--steps", c->steps, "Control steps (frames) per episode")->capture_default_str();
  app->add_option("--control-hz", c->control_hz, "Control rate in Hz (default: the robot's, 20)");
  app->add_option("--image-size", c->image_size, "Square image size in pixels, 16..256")->capture_default_str();
  app->add_option("--cameras", c->cameras, "Randomized camera views per episode")->capture_default_str();
  app->add_option("--workers", c->workers, "Worker threads (0 = all cores)")->capture_default_str();
  app->add_option("--seed", c->seed, "Random seed")->capture_default_str();
  app->add_option("--randomize", (*levels)["all"], "Randomization level for every group: none|light|default|wide (default light: what the world model learns from; default and wide for collection at scale)");
  for (const char* group : {"camera", "lighting", "materials", "dynamics", "embodiment", "objects"}) {
    app->add_option(std::string("--randomize-") + group, (*levels)[group],
                    std::string("Override the level for ") + group + ": none|light|default|wide");
  }
  app->add_option("--config", *config_file, "JSON file with any of these options (flags given here win)");
  app->add_option("--shard", *shard, "Collect shard I of N (episodes i with i % N == I), e.g. 0/4");
  app->add_flag("--resume", c->resume, "Finish an interrupted run with the same options");
  app->add_flag("--overwrite", c->overwrite, "Replace an existing output");
}

// Options from --config first, then every flag the user gave explicitly.
void ResolveConfig(const CLI::App& app, CollectConfig* c, const std::map<std::string, std::string>& levels,
                   const std::string& shard, const std::string& config_file) {
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) throw CollectError("cannot read --config " + config_file);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw CollectError("--config " + config_file + " is not valid JSON: " + e.what());
    }
    CollectConfig from_file;
    from_file.UpdateFromJson(j);
    // Flags given on the command line override the file.
    auto keep = [&](const char* flag, auto CollectConfig::*field) {
      if (app.count(flag) == 0) c->*field = from_file.*field;
    };
    keep("--robot", &CollectConfig::robot);
    keep("--episodes", &CollectConfig::episodes);
    keep("--out", &CollectConfig::out);
    keep("--task", &CollectConfig::task);
    keep("--steps", &CollectConfig::steps);
    keep("--control-hz", &CollectConfig::control_hz);
    keep("--image-size", &CollectConfig::image_size);
    keep("--cameras", &CollectConfig::cameras);
    keep("--workers", &CollectConfig::workers);
    keep("--seed", &CollectConfig::seed);
    keep("--resume", &CollectConfig::resume);
    keep("--overwrite", &CollectConfig::overwrite);
    c->randomization = from_file.randomization;
    if (app.count("--shard") == 0) {
      c->shard_index = from_file.shard_index;
      c->shard_count = from_file.shard_count;
    }
  }
  try {
    if (!levels.at("all").empty()) c->randomization = RandomizationConfig::All(ParseLevel(levels.at("all")));
    auto set = [&](const char* group, Level RandomizationConfig::*field) {
      if (!levels.at(group).empty()) c->randomization.*field = ParseLevel(levels.at(group));
    };
    set("camera", &RandomizationConfig::camera);
    set("lighting", &RandomizationConfig::lighting);
    set("materials", &RandomizationConfig::materials);
    set("dynamics", &RandomizationConfig::dynamics);
    set("embodiment", &RandomizationConfig::embodiment);
    set("objects", &RandomizationConfig::objects);
  } catch (const std::invalid_argument& e) {
    throw CollectError(e.what());
  }
  if (!shard.empty()) ParseShard(shard, &c->shard_index, &c->shard_count);
  c->Validate();
}

void PrintSummary(const CollectConfig& config, const CollectSummary& s) {
  std::printf("simcollect: wrote %lld episodes (%lld frames x %d camera%s) to %s in %.1f s: %.1f frames/s; "
              "dataset now holds %lld episodes; %lld unstable draws redrawn\n",
              static_cast<long long>(s.episodes_written), static_cast<long long>(s.frames_written), config.cameras,
              config.cameras > 1 ? "s" : "", config.OutPath().c_str(), s.seconds,
              s.seconds > 0 ? s.frames_written / s.seconds : 0.0, static_cast<long long>(s.episodes_total),
              static_cast<long long>(s.redraws));
  for (const auto& [task, counts] : s.success_by_task) {
    std::printf("  %-7s success %d/%d (%.0f%%)\n", task.c_str(), counts.first, counts.second,
                100.0 * counts.first / std::max(1, counts.second));
  }
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

int Info(const std::string& file) {
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
  std::printf("file:        %s\n", file.c_str());
  std::printf("episodes:    %zu (train %zu, valid %zu)\n", n, ds.Mask("train").size(), ds.Mask("valid").size());
  std::printf("frames:      %lld (per camera; /data total attr %lld)\n", static_cast<long long>(frames),
              static_cast<long long>(ds.total()));
  std::string names;
  for (const auto& e : embodiments) names += (names.empty() ? "" : ", ") + e;
  std::printf("embodiment:  %s\n", names.empty() ? "(none)" : names.c_str());
  if (!ds.config().is_null()) std::printf("options:     %s\n", ds.config().dump().c_str());
  std::printf("success:     %d/%zu (%.0f%%); unstable draws redrawn: %lld\n", successes, n,
              n ? 100.0 * successes / n : 0.0, static_cast<long long>(attempts));
  std::printf("tasks:\n");
  for (const auto& [task, c] : tasks) {
    std::printf("  %-8s %5d episodes, success %.0f%%\n", task.c_str(), c.second, 100.0 * c.first / std::max(1, c.second));
  }
  std::printf("randomization ranges seen (min .. max over episodes):\n");
  for (const auto& [key, r] : ranges) {
    if (key.rfind("material_rgba", 0) == 0 || key.rfind("material_texture", 0) == 0) continue;  // summarized below
    std::printf("  %-36s %9.4f .. %9.4f\n", key.c_str(), r.first, r.second);
  }
  int materials = 0;
  for (const auto& [key, r] : ranges) materials += key.rfind("material_rgba", 0) == 0;
  std::printf("  material colours: %d materials varied (see each episode's randomization attribute)\n", materials);
  return 0;
}

int Merge(const std::string& out, const std::vector<std::string>& shards, bool overwrite) {
  if (fs::exists(out) && !overwrite) throw CollectError(out + " already exists; pass --overwrite to replace it");
  std::map<std::int64_t, EpisodeEntry> episodes;
  nlohmann::json config, env_args, meta;
  const fs::path out_dir = fs::absolute(out).parent_path();
  for (const auto& shard : shards) {
    const Dataset ds(shard);
    ds.CheckAll();
    nlohmann::json c = ds.config();
    if (c.is_null()) throw CollectError(shard + " is not an Embody dataset (no embody_config)");
    c.erase("shard");
    if (config.is_null()) {
      config = c;
      env_args = ds.env_args();
      meta = ds.meta();
    } else if (c != config) {
      throw CollectError(shard + " was collected with other options than " + shards.front() + ": " + c.dump() +
                         " vs " + config.dump());
    }
    for (const auto& demo : ds.demos()) {
      const std::int64_t index = std::stoll(demo.substr(5));
      if (episodes.count(index)) throw CollectError(demo + " appears in more than one shard (" + shard + ")");
      const auto [file, object] = ds.LinkTarget(demo);
      episodes[index] = {fs::relative(file, out_dir).string(), object, ds.NumSamples(demo)};
    }
  }
  config["shard"] = "merged";
  if (!fs::absolute(out).parent_path().empty()) fs::create_directories(fs::absolute(out).parent_path());
  WriteTopFile(out, episodes, env_args, config, meta);
  std::printf("simcollect: merged %zu shards into %s: %zu episodes\n", shards.size(), out.c_str(), episodes.size());
  return 0;
}

int Bench(CollectConfig config, int episodes) {
  config.episodes = episodes;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int workers = config.WorkerCount();
  std::printf("simcollect bench: robot %s, %d episodes x %d steps, %dx%d, %d camera(s), %d workers, %d cores\n",
              config.robot.c_str(), episodes, config.steps, config.image_size, config.image_size, config.cameras,
              workers, cores);
  // 1. Physics only: the episode loop (policy, IK, stepping, recording) without rendering.
  EpisodeRunner physics(config, /*render=*/false);
  auto t = Clock::now();
  std::int64_t frames = 0;
  for (int i = 0; i < episodes; ++i) frames += physics.Run(i).steps;
  const double physics_s = Since(t) / frames;
  std::printf("  physics only:  %8.1f control steps/s (%d physics steps each: %.0f physics steps/s), one thread\n",
              1 / physics_s, physics.substeps(), physics.substeps() / physics_s);
  // 2. Render only: the same number of frames (x cameras) of one scene.
  EpisodeRunner render(config, /*render=*/true);
  render.Run(0);
  sim::Image image;
  const sim::Camera camera = sim::Camera::LookAt({1.5, 0.3, 1.1}, {0.45, 0, 0.55}, 45);
  t = Clock::now();
  for (std::int64_t i = 0; i < frames * config.cameras; ++i) render.renderer()->Render(render.world().data(), camera, &image);
  const double render_s = Since(t) / frames;  // per control step, all cameras
  std::printf("  render only:   %8.1f frames/s (x%d cameras per step), one thread [%s]\n",
              config.cameras / render_s, config.cameras, render.renderer()->backend().c_str());
  // 3. End to end: the real collection with HDF5 writing, into a temporary folder.
  const fs::path dir = fs::temp_directory_path() / ("simcollect_bench_" + std::to_string(getpid()));
  config.out = (dir / "bench.h5").string();
  config.resume = false;
  config.overwrite = true;
  const CollectSummary s = Collect(config, {.enabled = false});
  const double e2e = s.frames_written / s.seconds;
  std::error_code ec;
  fs::remove_all(dir, ec);
  // The limit: every stage's measured work per step (physics, render, and the writer's compression
  // and file writing, timed inside the same end-to-end run) spread perfectly over the cores.
  const double write_s = s.writer_busy_seconds / s.frames_written;
  std::printf("  writing:       %8.1f steps/s (writer thread busy %.2f s in the end-to-end run)\n", 1 / write_s,
              s.writer_busy_seconds);
  const double limit = std::min(workers, cores) / (physics_s + render_s + write_s);
  std::printf("  pipeline limit: %7.1f steps/s = min(workers, cores) / (physics + render + write per step)\n", limit);
  std::printf("  end to end:    %8.1f steps/s (%.1f s for %lld steps)\n", e2e, s.seconds,
              static_cast<long long>(s.frames_written));
  std::printf("  ratio end-to-end / pipeline limit: %.3f (target >= 0.9: %s)\n", e2e / limit, e2e / limit >= 0.9 ? "met" : "MISSED");
  std::printf("  => %d episodes x %d steps would take %.0f s at this rate\n", 5000, config.steps, 5000.0 * config.steps / e2e);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Mesa's llvmpipe would start its own rasterizer threads in every worker's context; the workers
  // already use every core, so render in the calling thread (measured faster at these image sizes).
  setenv("LP_NUM_THREADS", "0", /*overwrite=*/0);
  CLI::App app{"simcollect: randomized, action-labeled MuJoCo trajectories to HDF5 (robomimic layout)"};
  app.require_subcommand(0, 1);
  CollectConfig config;
  std::map<std::string, std::string> levels;
  std::string shard, config_file;
  AddCollectOptions(&app, &config, &levels, &shard, &config_file);

  CLI::App* info = app.add_subcommand("info", "Print what a dataset holds");
  std::string info_file;
  info->add_option("FILE", info_file, "Dataset file")->required();

  CLI::App* merge = app.add_subcommand("merge", "Join shard files into one dataset (external links, no copying)");
  std::string merge_out;
  std::vector<std::string> merge_in;
  bool merge_overwrite = false;
  merge->add_option("OUT", merge_out, "Merged dataset to write")->required();
  merge->add_option("SHARDS", merge_in, "Shard datasets")->required();
  merge->add_flag("--overwrite", merge_overwrite, "Replace OUT if it exists");

  CLI::App* bench = app.add_subcommand("bench", "Physics, render and end-to-end speed, and their ratio");
  CollectConfig bench_config;
  bench_config.task = "mix";
  std::map<std::string, std::string> bench_levels;
  std::string bench_shard, bench_config_file;
  int bench_episodes = 100;  // enough that per-worker start-up (model, EGL context) is amortized
  AddCollectOptions(bench, &bench_config, &bench_levels, &bench_shard, &bench_config_file);
  bench->get_option("--episodes")->description("Episodes per measurement");
  CLI11_PARSE(app, argc, argv);

  try {
    if (*info) return Info(info_file);
    if (*merge) return Merge(merge_out, merge_in, merge_overwrite);
    if (*bench) {
      ResolveConfig(*bench, &bench_config, bench_levels, bench_shard, bench_config_file);
      return Bench(bench_config, bench->count("--episodes") ? static_cast<int>(bench_config.episodes) : bench_episodes);
    }
    ResolveConfig(app, &config, levels, shard, config_file);
    PrintSummary(config, Collect(config));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "simcollect: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
