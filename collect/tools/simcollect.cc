// simcollect: randomized, action-labeled trajectories of arms and humanoids to HDF5.
//   simcollect --robot franka --episodes 5000       collect (see --help for every option)
//   simcollect info FILE                            what a dataset holds
//   simcollect merge OUT SHARDS...                  join shard files (external links, no copying)
//   simcollect bench --robot franka                 physics, render and end-to-end speed
//   simcollect slurm --robot franka --episodes 100000 --shards 64 --submit
//                                                   a Slurm array job (one shard per task) + a merge job
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "collect/collector.h"
#include "collect/dataset.h"
#include "collect/episode.h"
#include "collect/inspect.h"
#include "collect/slurm.h"

namespace {

using namespace embody;
using namespace embody::collect;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void AddCollectOptions(CLI::App* app, CollectConfig* c, std::map<std::string, std::string>* levels, std::string* shard, std::string* config_file) {
  app->add_option("--robot", c->robot, "Robot: franka, ur5, humanoid, or an embodiment .json")->capture_default_str();
  app->add_option("--episodes", c->episodes, "Episodes to collect")->capture_default_str();
  app->add_option("--out", c->out, "Output HDF5 file (default data/<robot>.h5)");
  app->add_option("--task", c->task, "reach|push|pick|wander|mix (humanoid: reach|squat|turn|wave|wander|mix)")->capture_default_str();
  app->add_option("--steps", c->steps, "Control steps (frames) per episode")->capture_default_str();
  app->add_option("--control-hz", c->control_hz, "Control rate in Hz (default: the robot's, 20)");
  app->add_option("--image-size", c->image_size, "Square image size in pixels, 16..256")->capture_default_str();
  app->add_option("--cameras", c->cameras, "Randomized camera views per episode")->capture_default_str();
  app->add_flag("--eye-in-hand", c->eye_in_hand,
                "Also record the camera on the robot's hand as robot0_eye_in_hand (robomimic's name; a pose per frame, as it moves)");
  app->add_option("--layouts-per-scene", c->layouts_per_scene,
                  "Episodes in groups of this many share one scene (cameras, lighting, materials, dynamics, embodiment), each with its own "
                  "object layout (attribute scene_group); for pretrain --scene-groups")
      ->capture_default_str();
  app->add_option("--layout-change", c->layout_change,
                  "How a scene group's episodes differ: all (each its own layout) or one (the first has the group's layout, each other "
                  "moves one object of it, the objects in turn)")
      ->capture_default_str();
  app->add_option("--group-actions", c->group_actions,
                  "What a scene group's episodes do: own (each its own scripted trajectory) or shared (each replays the group's first "
                  "episode's actions, so that the arm moves alike and the objects tell them apart)")
      ->capture_default_str();
  app->add_option("--workers", c->workers, "Worker threads (0 = all cores)")->capture_default_str();
  app->add_option("--seed", c->seed, "Random seed")->capture_default_str();
  app->add_option("--randomize", (*levels)["all"],
                  "Randomization level for every group: none|light|default|wide (default light: what the world model learns from; default and wide "
                  "for collection at scale)");
  for (const std::string& group : RandomizationConfig::Groups()) {
    app->add_option("--randomize-" + group, (*levels)[group], "Override the level for " + group + ": none|light|default|wide");
  }
  app->add_option("--config", *config_file, "JSON file with any of these options (flags given here win)");
  app->add_option("--shard", *shard, "Collect shard I of N (episodes i with i % N == I), e.g. 0/4");
  app->add_flag("--resume", c->resume, "Finish an interrupted run with the same options");
  app->add_flag("--overwrite", c->overwrite, "Replace an existing output");
}

// Options from --config first, then every flag the user gave explicitly.
void ResolveConfig(const CLI::App& app, CollectConfig* c, const std::map<std::string, std::string>& levels, const std::string& shard,
                   const std::string& config_file) {
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
    keep("--eye-in-hand", &CollectConfig::eye_in_hand);
    keep("--layouts-per-scene", &CollectConfig::layouts_per_scene);
    keep("--layout-change", &CollectConfig::layout_change);
    keep("--group-actions", &CollectConfig::group_actions);
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
    for (const std::string& group : RandomizationConfig::Groups()) {
      if (!levels.at(group).empty()) c->randomization.Set(group, ParseLevel(levels.at(group)));
    }
  } catch (const std::invalid_argument& e) {
    throw CollectError(e.what());
  }
  if (!shard.empty()) ParseShard(shard, &c->shard_index, &c->shard_count);
  c->Validate();
}

void PrintSummary(const CollectConfig& config, const CollectSummary& s) {
  std::printf(
      "simcollect: wrote %lld episodes (%lld frames x %d camera%s) to %s in %.1f s: %.1f frames/s; "
      "dataset now holds %lld episodes; %lld unstable draws redrawn\n",
      static_cast<long long>(s.episodes_written), static_cast<long long>(s.frames_written), config.cameras, config.cameras > 1 ? "s" : "",
      config.OutPath().c_str(), s.seconds, s.seconds > 0 ? s.frames_written / s.seconds : 0.0, static_cast<long long>(s.episodes_total),
      static_cast<long long>(s.redraws));
  for (const auto& [task, counts] : s.success_by_task) {
    std::printf("  %-7s success %d/%d (%.0f%%)\n", task.c_str(), counts.first, counts.second, 100.0 * counts.first / std::max(1, counts.second));
  }
}

int Bench(CollectConfig config, int episodes) {
  config.episodes = episodes;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int workers = config.WorkerCount();
  std::printf("simcollect bench: robot %s, %d episodes x %d steps, %dx%d, %d camera(s), %d workers, %d cores\n", config.robot.c_str(), episodes,
              config.steps, config.image_size, config.image_size, config.cameras, workers, cores);
  // 1. Physics only: the episode loop (policy, IK, stepping, recording) without rendering.
  EpisodeRunner physics(config, /*render=*/false);
  auto t = Clock::now();
  std::int64_t frames = 0;
  for (int i = 0; i < episodes; ++i) frames += physics.Run(i).steps;
  const double physics_s = Since(t) / frames;
  std::printf("  physics only:  %8.1f control steps/s (%d physics steps each: %.0f physics steps/s), one thread\n", 1 / physics_s, physics.substeps(),
              physics.substeps() / physics_s);
  // 2. Render only: the same number of frames (x cameras) of one scene.
  EpisodeRunner render(config, /*render=*/true);
  render.Run(0);
  sim::Image image;
  const sim::Camera camera = sim::Camera::LookAt({1.5, 0.3, 1.1}, {0.45, 0, 0.55}, 45);
  t = Clock::now();
  for (std::int64_t i = 0; i < frames * config.cameras; ++i) render.renderer()->Render(render.world().data(), camera, &image);
  const double render_s = Since(t) / frames;  // per control step, all cameras
  std::printf("  render only:   %8.1f frames/s (x%d cameras per step), one thread [%s]\n", config.cameras / render_s, config.cameras,
              render.renderer()->backend().c_str());
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
  std::printf("  writing:       %8.1f steps/s (writer thread busy %.2f s in the end-to-end run)\n", 1 / write_s, s.writer_busy_seconds);
  const double limit = std::min(workers, cores) / (physics_s + render_s + write_s);
  std::printf("  pipeline limit: %7.1f steps/s = min(workers, cores) / (physics + render + write per step)\n", limit);
  std::printf("  end to end:    %8.1f steps/s (%.1f s for %lld steps)\n", e2e, s.seconds, static_cast<long long>(s.frames_written));
  std::printf("  ratio end-to-end / pipeline limit: %.3f (target >= 0.9: %s)\n", e2e / limit, e2e / limit >= 0.9 ? "met" : "MISSED");
  std::printf("  => %d episodes x %d steps would take %.0f s at this rate\n", 5000, config.steps, 5000.0 * config.steps / e2e);
  return 0;
}

// `simcollect slurm`'s options: a collection's (with --config) and the job's.
struct SlurmCli {
  CollectConfig config;
  std::map<std::string, std::string> levels;
  std::string shard, config_file, retry;
  SlurmOptions options;
  bool submit = false;
};

CLI::App* AddSlurmCommand(CLI::App& app, SlurmCli& c) {
  CLI::App* slurm = app.add_subcommand("slurm", "Collect on a Slurm cluster: an array job of shards and a merge job (afterok)");
  SlurmOptions& o = c.options;
  AddCollectOptions(slurm, &c.config, &c.levels, &c.shard, &c.config_file);
  slurm->add_option("--shards", o.shards, "Array tasks, one shard each")->required()->check(CLI::Range(1, 100000));
  slurm->add_option("--partition", o.partition, "sbatch --partition");
  slurm->add_option("--account", o.account, "sbatch --account");
  slurm->add_option("--time", o.time, "sbatch --time, per task (e.g. 02:00:00)");
  slurm->add_option("--mem", o.mem, "sbatch --mem, per task (e.g. 8G)");
  slurm->add_option("--cpus-per-task", o.cpus_per_task, "sbatch --cpus-per-task (the collection uses them all)")->check(CLI::Range(0, 1024));
  slurm->add_option("--sbatch", o.sbatch, "Any other sbatch option for both jobs, e.g. --sbatch=--qos=long (repeatable)");
  slurm->add_flag("--submit", c.submit, "Submit the jobs (otherwise only write the scripts)");
  slurm->add_option("--retry", c.retry, "Resubmit these shards alone (e.g. 2,5) and a new merge job; implies --submit");
  slurm->add_flag("--overwrite-job", o.overwrite, "Start the job folder over (its shards are deleted)");
  slurm->add_flag("--train", o.train, "Also a training job after the merge (afterok): pretrain, then adapt, on the merged data (train.sbatch)");
  slurm->add_option("--models", o.models, "With --train: where the encoder and the model folder go")->capture_default_str();
  slurm->add_option("--encoder", o.encoder, "With --train: an existing encoder (stage two only, no pretrain)");
  slurm->add_option("--train-tasks", o.train_tasks, "With --train: data-parallel ranks (srun -n)")->capture_default_str()->check(CLI::Range(1, 4096));
  slurm->add_option("--pretrain-args", o.pretrain_args, "With --train: options added to pretrain, e.g. \"--steps 4000\"");
  slurm->add_option("--adapt-args", o.adapt_args, "With --train: options added to adapt, e.g. \"--train-decoder\"");
  return slurm;
}

// Writes the job's scripts, and submits them with --submit or --retry.
int RunSlurm(const CLI::App& slurm, SlurmCli& c) {
  ResolveConfig(slurm, &c.config, c.levels, c.shard, c.config_file);
  if (!c.options.train) {  // the training options mean nothing without --train: refused, never dropped
    for (const char* flag : {"--models", "--encoder", "--train-tasks", "--pretrain-args", "--adapt-args"}) {
      if (slurm.count(flag) > 0) throw CollectError(std::string(flag) + " sets up the training job: add --train");
    }
  }
  c.options.simcollect = fs::canonical("/proc/self/exe");
  const std::vector<int> retry = c.retry.empty() ? std::vector<int>{} : ParseShardList(c.retry, c.options.shards);
  const SlurmJob job = WriteSlurmJob(c.config, c.options);
  std::printf("simcollect slurm: %d shards of %lld episodes -> %s\n  scripts: %s, %s%s%s\n", c.options.shards,
              static_cast<long long>(c.config.episodes), job.out.c_str(), job.collect_script.c_str(), job.merge_script.c_str(),
              job.train_script.empty() ? "" : ", ", job.train_script.c_str());
  std::printf("  every node must see this filesystem at the same paths (the scripts use absolute paths); %s will link into %s/: keep it\n",
              job.out.filename().c_str(), job.dir.c_str());
  if (!c.submit && retry.empty()) {
    std::printf("  submit: simcollect slurm <these options> --submit   (or by hand: %s, each job afterok on the one before)\n",
                job.submit_script.c_str());
    return 0;
  }
  const SlurmSubmission s = SubmitSlurmJob(job, retry);
  const std::string which = retry.empty() ? "" : " (shards " + c.retry + ")";
  std::printf(
      "  submitted: array job %s%s, merge job %s (afterok)%s%s%s\n  logs: %s/logs/\n"
      "  a failed shard I: fix the cause, then simcollect slurm <these options> --retry I\n",
      s.array_job.c_str(), which.c_str(), s.merge_job.c_str(), s.train_job.empty() ? "" : ", training job ", s.train_job.c_str(),
      s.train_job.empty() ? "" : " (afterok on the merge)", job.dir.c_str());
  return 0;
}

// `simcollect bench`'s and `simcollect merge`'s options.
struct BenchCli {
  CollectConfig config;
  std::map<std::string, std::string> levels;
  std::string shard, config_file;
  int episodes = 100;  // enough that per-worker start-up (model, EGL context) is amortized
};
struct MergeCli {
  std::string out;
  std::vector<std::string> in;
  bool overwrite = false;
};

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
  MergeCli m;
  merge->add_option("OUT", m.out, "Merged dataset to write")->required();
  merge->add_option("SHARDS", m.in, "Shard datasets")->required();
  merge->add_flag("--overwrite", m.overwrite, "Replace OUT if it exists");

  CLI::App* bench = app.add_subcommand("bench", "Physics, render and end-to-end speed, and their ratio");
  BenchCli b;
  b.config.task = "mix";
  AddCollectOptions(bench, &b.config, &b.levels, &b.shard, &b.config_file);
  bench->get_option("--episodes")->description("Episodes per measurement");

  SlurmCli slurm_cli;
  CLI::App* slurm = AddSlurmCommand(app, slurm_cli);
  CLI11_PARSE(app, argc, argv);

  try {
    if (*info) {
      std::printf("%s", DescribeDataset(info_file).c_str());
      return 0;
    }
    if (*merge) {
      const std::int64_t n = MergeShards(m.out, std::vector<fs::path>(m.in.begin(), m.in.end()), m.overwrite);
      std::printf("simcollect: merged %zu shards into %s: %lld episodes\n", m.in.size(), m.out.c_str(), static_cast<long long>(n));
      return 0;
    }
    if (*slurm) return RunSlurm(*slurm, slurm_cli);
    if (*bench) {
      ResolveConfig(*bench, &b.config, b.levels, b.shard, b.config_file);
      return Bench(b.config, bench->count("--episodes") ? static_cast<int>(b.config.episodes) : b.episodes);
    }
    ResolveConfig(app, &config, levels, shard, config_file);
    PrintSummary(config, Collect(config));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "simcollect: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
