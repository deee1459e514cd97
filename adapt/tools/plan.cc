// plan: reach a goal image by planning in latent space, closed loop in MuJoCo (model-predictive
// control with CEM on the world model), with the random, still and oracle planners on the same
// episodes and a camera-offset sweep.
//   plan --embodiment franka --model models/franka --encoder models/encoder.pt --task reach --episodes 50
//        [--out out/plan_franka_reach.json] [--camera-offset 0 15 30 45] [--video out/plan_franka_reach.mp4]
// Beside the results: plots and <stem>_replay.h5 (the first --replay-episodes episodes, for
// rollout-viewer --plan and --video).
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

#include "adapt/core/defaults.h"
#include "adapt/core/distributed.h"
#include "adapt/core/error.h"
#include "adapt/core/plot.h"
#include "adapt/core/program_options.h"
#include "adapt/core/training.h"
#include "adapt/encoder/decoder.h"
#include "adapt/plan/plan_replay.h"
#include "adapt/plan/planner.h"
#include "adapt/world_model/stage_two.h"
#include "collect/config.h"
#include "sim/video.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;

std::string Table(const nlohmann::json& r) {
  std::string s;
  char line[256];
  auto row = [&](const char* name, const nlohmann::json& j) {
    std::snprintf(line, sizeof line, "  %-22s %7.0f %%   %6.1f cm   %5.1f steps   %7.3f s/action\n", name, 100 * j["success_rate"].get<double>(),
                  j["final_distance_cm"].get<double>(), j["mean_steps"].get<double>(), j["seconds_per_action"].get<double>());
    s += line;
  };
  std::snprintf(line, sizeof line, "plan %s %s: %d episodes, success within %.0f cm, at most %d model steps of %d control steps\n",
                r["embodiment"].get<std::string>().c_str(), r["task"].get<std::string>().c_str(), r["episodes"].get<int>(),
                r["success_cm"].get<double>(), r["max_steps"].get<int>(), r["frame_skip"].get<int>());
  s += line;
  s += "  planner                success   final dist   mean steps     planning\n";
  row(r.contains("hierarchy") ? "model (hierarchy)" : "model (latent CEM)", r);
  if (r.contains("oracle")) row(("oracle (" + r["oracle"]["kind"].get<std::string>() + ")").c_str(), r["oracle"]);
  if (r.contains("baselines")) {
    for (const char* name : {"random", "still"}) {
      if (r["baselines"].contains(name)) row(name, r["baselines"][name]);
    }
    if (r["baselines"].contains("nominal")) row("model, nominal robot", r["baselines"]["nominal"]);
    if (r["baselines"].contains("frozen")) row("model, not adapted", r["baselines"]["frozen"]);
    if (r["baselines"].contains("flat")) row("model, flat (one level)", r["baselines"]["flat"]);
  }
  if (r.contains("hierarchy")) {
    const auto& h = r["hierarchy"];
    const auto& e = h["slow_model_error"];
    std::snprintf(line, sizeof line,
                  "  hierarchy: slow step %d control steps (%d model steps), %d slow steps planned ahead (%s energy); slow model's next "
                  "latent / copy %.2f\n",
                  h["slow_frame_skip"].get<int>(), h["fast_steps_per_slow_step"].get<int>(), h["slow_horizon"].get<int>(),
                  h["slow_energy"].get<std::string>().c_str(),
                  e["latent_over_copy"].is_number() ? e["latent_over_copy"].get<double>() : std::nan(""));
    s += line;
  }
  if (r["perturbation"].value("name", "none") != "none") {
    std::snprintf(line, sizeof line, "  perturbation %s = %g %s%s\n", r["perturbation"]["name"].get<std::string>().c_str(),
                  r["perturbation"]["value"].get<double>(), r["perturbation"]["unit"].get<std::string>().c_str(),
                  r["online_adapt"].get<bool>() ? ", adapted online" : "");
    s += line;
  }
  auto error = [&](const char* name, const nlohmann::json& e) {
    auto num = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); };
    std::snprintf(line, sizeof line,
                  "  model error, %-12s next latent / copy %5.2f   ee at 1 s %5.2f cm (moving 5+ cm: %5.2f cm; after 5 s of acting %5.2f cm, "
                  "%d forecasts)\n",
                  name, num(e["latent_over_copy"]), num(e["ee_1s_cm"]), num(e["ee_1s_cm_moving"]), num(e["ee_1s_cm_after_5s"]),
                  e["forecasts_after_5s"].get<int>());
    s += line;
  };
  if (r.contains("model_error")) error(r["online_adapt"].get<bool>() ? "adapted:" : "model:", r["model_error"]);
  if (r.contains("baselines") && r["baselines"].contains("frozen")) error("not adapted:", r["baselines"]["frozen"]["model_error"]);
  if (r.contains("baselines") && r["baselines"].contains("nominal")) error("nominal:", r["baselines"]["nominal"]["model_error"]);
  for (const auto& [offset, rate] : r["by_camera_offset"].items()) {
    std::snprintf(line, sizeof line, "  camera offset %4s deg: model success %3.0f %%\n", offset.c_str(), 100 * rate.get<double>());
    s += line;
  }
  const auto& cem = r["cem"];
  std::snprintf(line, sizeof line, "  CEM %d samples x %d iterations x horizon %d: %.0f imagined model steps/s\n", cem["samples"].get<int>(),
                cem["iterations"].get<int>(), cem["horizon"].get<int>(), r["imagined_steps_per_s"].get<double>());
  s += line;
  return s;
}

// Mean of a per-episode series over the episodes that reached step i (runs stop at success).
PlotSeries MeanOverEpisodes(const nlohmann::json& episodes, const std::string& planner, const std::string& key, const std::string& label,
                            std::array<std::uint8_t, 3> color) {
  std::vector<double> sum, n;
  for (const auto& e : episodes) {
    if (!e.contains(planner) || !e[planner].contains(key)) continue;  // a run of one step has no model error
    const auto& v = e[planner][key];
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number()) continue;
      if (sum.size() <= i) sum.resize(i + 1), n.resize(i + 1);
      sum[i] += v[i].get<double>();
      n[i] += 1;
    }
  }
  PlotSeries s{label, {}, {}, color};
  for (size_t i = 0; i < sum.size(); ++i) {
    if (n[i] == 0) continue;
    s.x.push_back(static_cast<double>(i));
    s.y.push_back(sum[i] / n[i]);
  }
  return s;
}

void WritePlots(const fs::path& json_path, const nlohmann::json& r) {
  const fs::path stem = json_path.parent_path() / json_path.stem();
  const std::string title = r["embodiment"].get<std::string>() + " " + r["task"].get<std::string>();
  std::vector<PlotSeries> dist = {MeanOverEpisodes(r["per_episode"], "model", "distance_cm", "model", {31, 119, 180})};
  if (r.contains("oracle")) dist.push_back(MeanOverEpisodes(r["per_episode"], "oracle", "distance_cm", "oracle", {44, 160, 44}));
  if (r.contains("baselines") && r["baselines"].contains("random")) {
    dist.push_back(MeanOverEpisodes(r["per_episode"], "random", "distance_cm", "random", {214, 39, 40}));
    dist.push_back(MeanOverEpisodes(r["per_episode"], "still", "distance_cm", "still", {127, 127, 127}));
  }
  WriteLinePlot(stem.string() + "_distance.png", dist,
                {title + ": distance to the goal (episodes still running)", "model step", "cm", 640, 400, true, /*integer_x=*/true});
  WriteLinePlot(stem.string() + "_energy.png", {MeanOverEpisodes(r["per_episode"], "model", "energy", "model plan", {31, 119, 180})},
                {title + ": latent energy of the executed plan", "model step", "L1 to the goal latent", 640, 400, true, /*integer_x=*/true});
  if (r["per_episode"].size() > 0) {
    std::vector<PlotSeries> err = {
        MeanOverEpisodes(r["per_episode"], "model", "latent_error", r["online_adapt"].get<bool>() ? "adapted" : "model", {31, 119, 180})};
    if (r.contains("baselines") && r["baselines"].contains("frozen"))
      err.push_back(MeanOverEpisodes(r["per_episode"], "frozen", "latent_error", "not adapted", {255, 127, 14}));
    if (r.contains("baselines") && r["baselines"].contains("nominal"))
      err.push_back(MeanOverEpisodes(r["per_episode"], "nominal", "latent_error", "nominal robot", {44, 160, 44}));
    WriteLinePlot(stem.string() + "_model_error.png", err,
                  {title + ": the model's next-frame error over the episode", "model step", "latent L1", 640, 400, false, /*integer_x=*/true});
  }
  PlotSeries success{"model", {}, {}, {31, 119, 180}};
  for (const auto& [offset, rate] : r["by_camera_offset"].items()) {
    success.x.push_back(std::stod(offset));
    success.y.push_back(100 * rate.get<double>());
  }
  std::vector<PlotSeries> rates = {success};
  auto flat = [&](const char* label, double rate, std::array<std::uint8_t, 3> color) {
    rates.push_back({label, {success.x.front(), success.x.back()}, {100 * rate, 100 * rate}, color});
  };
  if (r.contains("oracle")) flat("oracle (offset 0)", r["oracle"]["success_rate"].get<double>(), {44, 160, 44});
  if (r.contains("baselines") && r["baselines"].contains("random"))
    flat("random", r["baselines"]["random"]["success_rate"].get<double>(), {214, 39, 40});
  WriteLinePlot(stem.string() + "_success.png", rates, {title + ": success per camera offset", "camera azimuth offset (deg)", "success %"});
}

// Latents (B, N, D) drawn by the decoder: B images, S*S*3 RGB each, one after the other.
std::vector<std::uint8_t> Decode(LatentDecoder& decoder, const torch::Tensor& latents) {
  const auto images = (decoder->forward(latents) * 255).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
  return std::vector<std::uint8_t>(images.data_ptr<std::uint8_t>(), images.data_ptr<std::uint8_t>() + images.numel());
}

// The replay file's contents: the traced episodes, each step's imagined plan decoded when the model
// folder has a decoder.pt (adapt --train-decoder; `decoder` null otherwise).
PlanReplayFile MakeReplay(const std::vector<PlanTrace>& traces, const fs::path& model_path, const nlohmann::json& r, int image_size,
                          LatentDecoder decoder) {
  PlanReplayFile replay;
  replay.embodiment = r["embodiment"];
  replay.task = r["task"];
  replay.model = model_path.string();
  replay.frame_skip = r["frame_skip"];
  replay.horizon = r["cem"]["horizon"];
  replay.image_size = image_size;
  replay.success_cm = r["success_cm"];
  torch::NoGradGuard no_grad;
  for (const PlanTrace& t : traces) {
    PlanReplayEpisode e;
    e.episode = t.episode;
    e.steps = t.result.steps;
    e.success = t.result.success;
    e.goal = t.goal_image;
    if (r.value("subgoal_steps", 0) > 0 && t.target_images.size() == t.goal_image.size() * e.steps) e.targets = t.target_images;
    // The hierarchy's subgoals are latents: drawn by the decoder, where the model has one.
    if (decoder && !t.subgoal_latents.empty()) e.targets = Decode(decoder, torch::stack(t.subgoal_latents));
    for (const auto& f : t.trace.frames) e.frames.insert(e.frames.end(), f.begin(), f.end());
    e.energy = t.result.energy;
    // Step t's next-frame error is the forecast of frame t (none at step 0): the series as the episode
    // went, `steps` long (the run without adaptation: as long as it ran).
    const auto series = [](const std::vector<double>& latent, size_t steps) {
      std::vector<double> v = {std::nan("")};
      v.insert(v.end(), latent.begin(), latent.end());
      v.resize(steps, std::nan(""));
      return v;
    };
    if (e.steps > 0) e.model_error = series(t.result.errors.latent, static_cast<size_t>(e.steps));
    if (!t.frozen_errors.latent.empty()) e.model_error_frozen = series(t.frozen_errors.latent, t.frozen_errors.latent.size() + 1);
    for (double d : t.result.distance_m) e.distance_cm.push_back(100 * d);
    if (decoder) {
      for (const auto& imagined : t.trace.imagined) {
        const auto images = Decode(decoder, imagined);
        e.imagined.insert(e.imagined.end(), images.begin(), images.end());
      }
    }
    replay.episodes.push_back(std::move(e));
  }
  return replay;
}

// The replay as a video: per model step [executed | goal (or the subgoal it aims at) | the imagined plan's frames], enlarged.
void WriteReplayVideo(const fs::path& path, const PlanReplayFile& replay) {
  const int s = replay.image_size, scale = std::max(1, 256 / s), side = s * scale;
  const bool decoded = !replay.episodes.empty() && !replay.episodes[0].imagined.empty();
  const int panels = 2 + (decoded ? replay.horizon : 0);
  const int width = panels * side, height = side;
  size_t episode = 0;
  int step = 0;
  embody::sim::WriteVideo(path, width + width % 2, height + height % 2, 2.0, [&](std::vector<std::uint8_t>* frame) {
    if (episode >= replay.episodes.size()) return false;
    const PlanReplayEpisode& e = replay.episodes[episode];
    const int w = width + width % 2;
    frame->assign(static_cast<size_t>(w) * (height + height % 2) * 3, 40);
    auto paste = [&](int panel, const std::uint8_t* rgb) {
      for (int y = 0; y < side; ++y) {
        for (int x = 0; x < side; ++x) {
          const std::uint8_t* src = rgb + (static_cast<size_t>(y / scale) * s + x / scale) * 3;
          std::copy(src, src + 3, frame->data() + (static_cast<size_t>(y) * w + panel * side + x) * 3);
        }
      }
    };
    paste(0, e.Frame(step, s));
    paste(1, e.Target(step, s));
    if (decoded && step < e.steps) {
      for (int h = 0; h < replay.horizon; ++h) paste(2 + h, e.Imagined(step, h, replay.horizon, s));
    }
    if (++step > e.steps) step = 0, ++episode;
    return true;
  });
}

// plan's options: the planning run's (adapt/plan/planner.h) and the program's own.
struct PlanOptions {
  PlanRunOptions run;
  std::string model_path, encoder_path, out, task = "reach", randomize = "light", robot, video, device = "auto", perturb, slow_model;
  int threads = 0;
  double success_cm = 5;
  bool no_baselines = false, full_episodes = false;
  PlanOptions() {
    run.oracle_cem = {64, 3, 8, 2, 0.6, 0.05, 1.0};
    run.replay_episodes = 3;
  }
};

// The robot, the model, the task and its scenes, the outputs.
void AddTaskOptions(CLI::App& app, PlanOptions& p) {
  PlanRunOptions& o = p.run;
  app.add_option("--embodiment", p.robot,
                 "Arm (franka, ur5, or your descriptor: path/to/robot.json, or its name once --model's folder was trained on it; default: --model's "
                 "robot, else franka)");
  app.add_option("--model", p.model_path, "Stage-two model folder (default models/<embodiment>)");
  app.add_option(
      "--encoder", p.encoder_path,
      "The frozen encoder the model was trained on (default: the one --model records, else models/encoder.pt, else the only one in models/)");
  app.add_option(
         "--task", p.task,
         "reach (ee to a goal 10-30 cm away, --reach-cm), push (an object 10-20 cm) or pick (an object grasped, lifted and placed 10+ cm away)")
      ->capture_default_str();
  app.add_option("--episodes", o.episodes, "Planning episodes")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--out", p.out, "Results JSON (default out/plan_<embodiment>_<task>.json; plots beside it)");
  app.add_option("--seed", o.seed, "Scene seed (keep it apart from the training data's)")->capture_default_str();
  app.add_option("--randomize", p.randomize, "Scene randomization level: none|light|default|wide (the world model's)")->capture_default_str();
  app.add_option("--max-steps", o.mpc.max_steps, "Model steps per episode")->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--success-cm", p.success_cm, "Success radius")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--subgoal-steps", o.subgoal_steps,
                 "push, pick: model steps aimed at each subgoal image (push: above the point behind the object, down there; pick: above the "
                 "object, around it, lifted, over the place, set down) before the goal; 0 = the goal image only")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--push-waypoints", o.push_waypoints,
                 "push: further subgoal images along the push line (the scripted push at 1/(n+1) ... n/(n+1) of it), after the two before it")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  app.add_option("--reach-cm", o.reach_cm, "reach: the goal's distance from the start, MIN MAX (cm; default 10 30)");
  app.add_option("--camera-offset", o.camera_offsets, "Camera azimuth offsets (deg) to re-run the model planner at")->expected(1, -1);
  app.add_option(
         "--replay-episodes", o.replay_episodes,
         "Episodes recorded for rollout-viewer --plan (frames, imagined plans decoded with the model's decoder.pt, energy) in <stem>_replay.h5")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--video", p.video, "Also write the recorded episodes as an MP4: executed frame | goal | the imagined plan, per model step");
  app.add_option("--perturb", p.perturb,
                 "Plan on a robot changed outside the training randomization, NAME or NAME=VALUE (the model planner also runs on the nominal "
                 "robot, same episodes):\n" +
                     PerturbationHelp());
  app.add_flag("--full-episodes", p.full_episodes,
               "Act all --max-steps model steps even after success (model-error curves over a fixed time; success = within the radius at "
               "some step)");
}

// Online adaptation of the model's per-robot parts while acting.
void AddOnlineOptions(CLI::App& app, PlanOptions& p) {
  OnlineAdaptOptions& o = p.run.online;
  app.add_flag("--online-adapt", o.enabled,
               "Adapt the model's per-robot parts (adapters, dynamics) during each episode from the robot's own last model steps, trunk and "
               "encoder frozen (the model planner also runs without it: baselines.frozen)");
  app.add_option("--online-steps", o.steps, "Online adaptation: gradient steps per model step")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--online-lr", o.lr, "Online adaptation: SGD learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--online-parts", o.parts,
                 "Online adaptation: all (the predictor's adapters and the dynamics correction) or dynamics (the correction alone)")
      ->capture_default_str();
  app.add_option("--online-window", o.window, "Online adaptation: the most recent model steps learned from")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
}

// Two timescales: a slow world model's subgoals for the planner.
void AddHierarchyOptions(CLI::App& app, PlanOptions& p) {
  HierarchyOptions& h = p.run.hierarchy;
  app.add_flag("--hierarchy", h.enabled,
               "Plan on two timescales from the final goal image alone: the slow model (--slow-model) plans subgoal latents toward it, the "
               "model plans actions toward the next subgoal (the flat planner also runs: baselines.flat)");
  app.add_option("--slow-model", p.slow_model,
                 "--hierarchy: the slow level, a model folder trained by adapt with a longer --frame-skip on the same encoder (default "
                 "<model>/slow)");
  app.add_option("--slow-horizon", h.horizon, "--hierarchy: slow model steps planned ahead")->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--slow-energy", h.energy, "--hierarchy: final (the last imagined slow step vs the goal) or mean (every slow step)")
      ->capture_default_str();
}

// The planner (CEM in latent space), its baselines, and where it runs.
void AddPlannerOptions(CLI::App& app, PlanOptions& p) {
  PlanRunOptions& o = p.run;
  app.add_option("--samples", o.cem.samples, "CEM samples per iteration")->capture_default_str()->check(CLI::Range(2, 100000));
  app.add_option("--iterations", o.cem.iterations, "CEM iterations per model step")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--elites", o.cem.elites, "CEM elites")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--horizon", o.cem.horizon, "Model steps imagined per plan")->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--bound", o.cem.bound, "Largest |action| the planners may choose (normalized units)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
  app.add_option("--init-std", o.cem.init_std, "CEM's initial spread of the samples around the plan (normalized units; clipped to --bound)")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 10.0));
  app.add_option("--context", o.context, "True model steps the predictor sees when planning (0 = the model's)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--energy", o.energy, "final (last imagined step vs the goal latent) or mean (every step)")->capture_default_str();
  app.add_option("--oracle", o.oracle, "dynamics (CEM on the learned dynamics model, reach), sim (MuJoCo as the model), none, auto")
      ->capture_default_str();
  app.add_flag("--no-baselines", p.no_baselines, "Skip the random and still planners");
  app.add_option("--threads", p.threads, "LibTorch threads (0 = all cores)")->capture_default_str();
  app.add_option("--device", p.device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda: the encoder and the world model")
      ->capture_default_str();
}

// The options into the run's, the robot and encoder found, the inputs checked; refusals named.
void Resolve(PlanOptions& p) {
  PlanRunOptions& o = p.run;
  o.task = ParsePlanTask(p.task);
  o.randomization = embody::collect::RandomizationConfig::All(embody::collect::ParseLevel(p.randomize));
  o.mpc.success_m = p.success_cm / 100;
  o.baselines = !p.no_baselines;
  o.oracle_cem.bound = o.cem.bound;
  if (!p.perturb.empty()) o.perturbation = ParsePerturbation(p.perturb);
  o.mpc.stop_at_success = !p.full_episodes;
  if (o.cem.elites > o.cem.samples) throw AdaptError("--elites must not exceed --samples");
  const ModelArgs found = ResolveModelArgs("plan", p.robot, p.model_path, p.encoder_path);
  o.embodiment = found.robot.name;
  o.robot = found.robot.ref;
  p.model_path = found.model_dir;
  p.encoder_path = found.encoder;
  if (!p.video.empty() && o.replay_episodes < 1) throw AdaptError("--video shows the recorded episodes: --replay-episodes must be >= 1");
  if (!p.video.empty() && !embody::sim::HaveFfmpeg()) throw AdaptError("--video needs ffmpeg (apt-get install ffmpeg; make deps installs it)");
  if (p.out.empty()) p.out = "out/plan_" + o.embodiment + "_" + p.task + (o.hierarchy.enabled ? "_hierarchy" : "") + ".json";
  if (o.hierarchy.enabled) {
    if (p.slow_model.empty()) p.slow_model = (fs::path(p.model_path) / "slow").string();
    std::error_code ec;
    if (!fs::exists(fs::path(p.slow_model) / "model.pt", ec)) {
      throw AdaptError("--hierarchy needs a slow level: no " + (fs::path(p.slow_model) / "model.pt").string() +
                       " (a one-level model; train one on the same encoder: adapt --embodiment " + o.embodiment + " --encoder " + p.encoder_path +
                       " --out " + p.slow_model + " --frame-skip 20 --context 1 --rollout 1)");
    }
  }
  if (p.threads > 0) torch::set_num_threads(p.threads);
}

// The replay's decoder (the model folder's decoder.pt, when replays are recorded), checked before
// planning: a mismatch would otherwise surface after the run.
LatentDecoder ReplayDecoder(const PlanOptions& p, const FrozenEncoder& encoder) {
  std::error_code ec;
  if (p.run.replay_episodes < 1 || !fs::exists(fs::path(p.model_path) / "decoder.pt", ec)) return LatentDecoder{nullptr};
  LatentDecoder decoder = LoadDecoder(fs::path(p.model_path) / "decoder.pt");
  if (decoder->image_size != encoder.image_size()) {
    throw AdaptError(p.model_path + "/decoder.pt draws " + std::to_string(decoder->image_size) + " px frames; the encoder takes " +
                     std::to_string(encoder.image_size()) + " px");
  }
  return decoder;
}

// The replay file (and --video) of the traced episodes, named in the results as "replay".
void WriteReplay(const PlanOptions& p, const std::vector<PlanTrace>& traces, int image_size, LatentDecoder decoder, nlohmann::json* r) {
  const fs::path replay_path = fs::path(p.out).parent_path() / (fs::path(p.out).stem().string() + "_replay.h5");
  const PlanReplayFile replay = MakeReplay(traces, p.model_path, *r, image_size, decoder);
  WritePlanReplayFile(replay_path, replay);
  (*r)["replay"] = replay_path.filename().string();
  std::printf("replay of %zu episodes: %s (rollout-viewer --plan %s)%s\n", traces.size(), replay_path.c_str(), p.out.c_str(),
              replay.episodes[0].imagined.empty() ? "; no decoder.pt in the model folder: imagined plans not decoded" : "");
  if (!p.video.empty()) {
    WriteReplayVideo(p.video, replay);
    std::printf("wrote %s\n", p.video.c_str());
  }
}

void Run(PlanOptions& p, const nlohmann::json& options) {
  Resolve(p);
  // One writer per output: a second plan on the same results (or --video) is refused.
  const auto out_lock = LockOutputOnRoot(p.out, "plan", nullptr);
  const auto video_lock = p.video.empty() ? std::optional<embody::sim::OutputLock>() : LockOutputOnRoot(p.video, "plan", nullptr);
  std::string hash, slow_hash;
  WorldModel model = LoadWorldModel(p.model_path, &hash);
  std::optional<WorldModel> slow;
  if (p.run.hierarchy.enabled) {
    slow = LoadWorldModel(p.slow_model, &slow_hash);
    if (slow_hash != hash) throw AdaptError("the slow model " + p.slow_model + " was trained on another encoder than " + p.model_path);
  }
  FrozenEncoder encoder = FrozenEncoder::Load(p.encoder_path);
  const torch::Device dev = ResolveDevice(p.device);
  model.To(dev);
  if (slow) slow->To(dev);
  encoder.To(dev);
  const LatentDecoder decoder = ReplayDecoder(p, encoder);
  std::vector<PlanTrace> traces;
  nlohmann::json r = RunPlanning(
      model, hash, encoder, p.run,
      [](const std::string& line) {
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
      },
      &traces, slow ? &*slow : nullptr);
  r["options"] = options;
  if (slow) r["hierarchy"]["slow_model"] = p.slow_model;
  const std::string& out = p.out;
  if (fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  if (!traces.empty()) WriteReplay(p, traces, encoder.image_size(), decoder, &r);
  embody::collect::WriteJsonFileAtomically(out, r);
  WritePlots(out, r);
  std::printf("%s", Table(r).c_str());
  std::printf("wrote %s (plots: %s_{distance,energy,success}.png)\n", out.c_str(),
              (fs::path(out).parent_path() / fs::path(out).stem()).string().c_str());
}

// A setting the run would not use is refused, naming what it needs: the hierarchy's and online
// adaptation's without them (one at its default, as a stored results' "options" holds them, changes
// nothing and passes), --reach-cm on another task, subgoal images with the hierarchy (the stored
// options then say 0, so --config on the results runs it again).
void RefuseDroppedSettings(const CLI::App& app, PlanOptions& p, nlohmann::json* options) {
  // Settings of the hierarchy without it would be dropped; subgoal images with it too: refused.
  const HierarchyOptions hierarchy;
  const std::pair<const char*, bool> slow_settings[] = {{"--slow-model", !p.slow_model.empty()},
                                                        {"--slow-horizon", p.run.hierarchy.horizon != hierarchy.horizon},
                                                        {"--slow-energy", p.run.hierarchy.energy != hierarchy.energy}};
  for (const auto& [name, changed] : slow_settings) {
    if (changed && !p.run.hierarchy.enabled) throw AdaptError(std::string(name) + " tunes the hierarchy: add --hierarchy");
  }
  if (p.task != "reach" && p.run.reach_cm != PlanRunOptions().reach_cm) throw AdaptError("--reach-cm sets the reach task's goals: add --task reach");
  if (p.run.hierarchy.enabled) {
    if (app.count("--subgoal-steps") > 0 && p.run.subgoal_steps > 0)
      throw AdaptError("--hierarchy plans from the final goal image alone: --subgoal-steps would give it subgoal images");
    p.run.subgoal_steps = 0;
    (*options)["subgoal-steps"] = 0;
  }
  // A setting of online adaptation without it would be dropped: refused (one at its default, as a
  // stored results' "options" holds them, changes nothing and passes).
  const OnlineAdaptOptions defaults;
  const std::pair<const char*, bool> tuned[] = {{"--online-steps", p.run.online.steps != defaults.steps},
                                                {"--online-lr", p.run.online.lr != defaults.lr},
                                                {"--online-window", p.run.online.window != defaults.window},
                                                {"--online-parts", p.run.online.parts != defaults.parts}};
  for (const auto& [name, changed] : tuned) {
    if (changed && !p.run.online.enabled) throw AdaptError(std::string(name) + " tunes online adaptation: add --online-adapt");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"plan: reach a goal image by model-predictive control in the world model's latent space"};
  PlanOptions p;
  AddTaskOptions(app, p);
  AddPlannerOptions(app, p);
  AddOnlineOptions(app, p);
  AddHierarchyOptions(app, p);
  AddConfigOption(app);
  CLI11_PARSE(app, argc, argv);
  nlohmann::json options = ProgramOptions(app);  // stored in the results JSON: plan --config reads it back
  try {
    RefuseDroppedSettings(app, p, &options);
    Run(p, options);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plan: error: %s\n", e.what());
    return 1;
  }
}
