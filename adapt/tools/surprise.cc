// surprise: violation-of-expectation tests of a world model. Matched pairs of clips (possible and
// impossible: an object that vanishes, falls through the table, moves before anything touches it,
// falls upward) rendered in MuJoCo; the model's surprise (prediction error) on each, scored by
// pairwise accuracy and AUROC per violation type, against copy-last and pixel-change detectors.
//   surprise --embodiment franka --model models/franka --encoder models/encoder.pt --pairs 100
//            [--out out/surprise_franka.json] [--clips out/surprise_franka_clips.h5]
#include <cstdio>

#include <CLI/CLI.hpp>

#include "adapt/core/defaults.h"
#include "adapt/core/distributed.h"
#include "adapt/core/error.h"
#include "adapt/core/plot.h"
#include "adapt/core/program_options.h"
#include "adapt/core/training.h"
#include "adapt/surprise/surprise.h"
#include "adapt/world_model/stage_two.h"
#include "collect/config.h"
#include "collect/dataset.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;

std::string Table(const nlohmann::json& r) {
  std::string s;
  char line[256];
  std::snprintf(line, sizeof line, "surprise %s: %d pairs (score: %s surprise over the clip; pairwise accuracy / AUROC)\n",
                r["embodiment"].get<std::string>().c_str(), r["pairs"].get<int>(), r["score"].get<std::string>().c_str());
  s += line;
  s += "  type          pairs    model          copy-last      pixel change   physics oracle  pixel change possible/impossible\n";
  auto cell = [](const nlohmann::json& j) {
    char c[32];
    std::snprintf(c, sizeof c, "%.2f / %.2f", j["pairwise_accuracy"].get<double>(), j["auroc"].get<double>());
    return std::string(c);
  };
  for (const auto& [type, d] : r["by_type_detail"].items()) {
    std::snprintf(line, sizeof line, "  %-12s %6d    %-13s  %-13s  %-13s  %-13s   %.4f / %.4f%s\n", type.c_str(), d["pairs"].get<int>(),
                  cell(d["model"]).c_str(), cell(d["copy_last"]).c_str(), cell(d["pixel"]).c_str(), cell(d["oracle"]).c_str(),
                  d["mean_pixel_change"]["possible"].get<double>(), d["mean_pixel_change"]["impossible"].get<double>(),
                  d["copy_last_at_most_0_6"].get<bool>() ? "" : "   (copy-last > 0.6)");
    s += line;
  }
  std::snprintf(line, sizeof line, "  %-12s %6d    %-13s  %-13s  %-13s  %-13s\n", "all", r["pairs"].get<int>(), cell(r).c_str(),
                cell(r["baselines"]["copy_last"]).c_str(), cell(r["baselines"]["pixel"]).c_str(), cell(r["oracle"]).c_str());
  s += line;
  const auto& t = r["target"];
  if (t.contains("met")) {
    std::string types;
    for (const auto& x : t["types"]) types += (types.empty() ? "" : ", ") + x.get<std::string>();
    std::snprintf(line, sizeof line, "  target (>= 0.90 / 0.90 on types where copy-last <= 0.6: %s): %.2f / %.2f, %s\n", types.c_str(),
                  t["pairwise_accuracy"].get<double>(), t["auroc"].get<double>(), t["met"].get<bool>() ? "met" : "not met");
  } else {
    std::snprintf(line, sizeof line, "  target: no type where copy-last <= 0.6 in this run\n");
  }
  s += line;
  return s;
}

// Per type: the model's and copy-last's mean surprise around the violation, impossible vs possible.
void WritePlots(const fs::path& json_path, const nlohmann::json& r) {
  const fs::path stem = json_path.parent_path() / json_path.stem();
  for (const auto& [type, d] : r["by_type_detail"].items()) {
    const auto& a = d["aligned_at_violation"];
    std::vector<double> x;
    for (const auto& o : a["offsets"]) x.push_back(o.get<double>());
    auto series = [&](const char* key, const char* label, std::array<std::uint8_t, 3> color) {
      return PlotSeries{label, x, a[key].get<std::vector<double>>(), color};
    };
    WriteLinePlot(stem.string() + "_" + type + ".png",
                  {series("model_impossible", "model, impossible", {214, 39, 40}), series("model_possible", "model, possible", {31, 119, 180}),
                   series("copy_last_impossible", "copy-last, impossible", {255, 152, 150}),
                   series("copy_last_possible", "copy-last, possible", {174, 199, 232})},
                  {r["embodiment"].get<std::string>() + " " + type + ": mean surprise around the violation",
                   "model steps from the first differing frame", "latent L1", 640, 400, true, /*integer_x=*/true});
  }
}

// surprise's options: the run's (adapt/surprise/surprise.h) and the program's own.
struct SurpriseCli {
  SurpriseRunOptions run;
  std::string robot, model_path, encoder_path, out, randomize = "light", clips, device = "auto";
  std::vector<std::string> types;
  int threads = 0;
  bool overwrite = false;
};

void AddOptions(CLI::App& app, SurpriseCli& c) {
  SurpriseRunOptions& o = c.run;
  app.add_option("--embodiment", c.robot,
                 "Arm (franka, ur5, or your descriptor: path/to/robot.json, or its name once --model's folder was trained on it; default: --model's "
                 "robot, else franka)");
  app.add_option("--model", c.model_path, "Stage-two model folder (default models/<embodiment>)");
  app.add_option(
      "--encoder", c.encoder_path,
      "The frozen encoder the model was trained on (default: the one --model records, else models/encoder.pt, else the only one in models/)");
  app.add_option("--pairs", o.pairs, "Matched pairs, spread evenly over the types")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--types", c.types, "Violation types (default all: permanence solidity continuity gravity)")->expected(1, -1);
  app.add_option("--out", c.out, "Results JSON (default out/surprise_<embodiment>.json; plots beside it)");
  app.add_option("--clips", c.clips, "Also write the clips as a dataset (collection layout; attrs violation, violation_frame, possible)");
  app.add_flag("--overwrite", c.overwrite, "Replace an existing --clips dataset")->configurable(false);
  app.add_option("--seed", o.seed, "Scene seed (keep it apart from the training data's)")->capture_default_str();
  app.add_option("--randomize", c.randomize, "Scene randomization level: none|light|default|wide (the world model's)")->capture_default_str();
  app.add_option("--steps", o.steps, "Control steps per clip")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--context", o.context, "True model steps the predictor sees (0 = the model's)")->capture_default_str()->check(CLI::Range(0, 64));
  app.add_option("--score", o.score, "A clip's surprise: mean or max of its per-model-step prediction error")->capture_default_str();
  app.add_option("--threads", c.threads, "LibTorch threads (0 = all cores)")->capture_default_str();
  app.add_option("--device", c.device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda: the encoder and the world model")
      ->capture_default_str();
}

// The options into the run's, the robot and encoder found; refusals named.
void Resolve(SurpriseCli& c) {
  SurpriseRunOptions& o = c.run;
  if (!c.types.empty()) {
    o.types.clear();
    for (const auto& t : c.types) o.types.push_back(ParseViolation(t));
  }
  o.randomization = embody::collect::RandomizationConfig::All(embody::collect::ParseLevel(c.randomize));
  const ModelArgs found = ResolveModelArgs("surprise", c.robot, c.model_path, c.encoder_path);
  o.embodiment = found.robot.name;
  o.robot = found.robot.ref;
  c.model_path = found.model_dir;
  c.encoder_path = found.encoder;
  if (c.out.empty()) c.out = "out/surprise_" + o.embodiment + ".json";
  if (c.threads > 0) torch::set_num_threads(c.threads);
}

// --clips: its place made (an existing one replaced only with --overwrite).
void PrepareClips(SurpriseCli& c) {
  std::error_code ec;
  if (fs::exists(c.clips, ec) || fs::exists(embody::collect::PartsDir(c.clips), ec)) {
    if (!c.overwrite) throw AdaptError(c.clips + " exists (pass --overwrite to replace it)");
    fs::remove(c.clips);
    fs::remove_all(embody::collect::PartsDir(c.clips));
  }
  if (fs::path(c.clips).has_parent_path()) fs::create_directories(fs::path(c.clips).parent_path());
  c.run.clips = c.clips;
}

void Run(SurpriseCli& c, const nlohmann::json& options) {
  Resolve(c);
  // One writer per output: a second surprise on the same results or clips (--overwrite too) is refused.
  const auto out_lock = LockOutputOnRoot(c.out, "surprise", nullptr);
  const auto clips_lock = c.clips.empty() ? std::optional<embody::sim::OutputLock>() : LockOutputOnRoot(c.clips, "surprise", nullptr);
  if (!c.clips.empty()) PrepareClips(c);
  std::string hash;
  WorldModel model = LoadWorldModel(c.model_path, &hash);
  FrozenEncoder encoder = FrozenEncoder::Load(c.encoder_path);
  const torch::Device dev = ResolveDevice(c.device);
  model.To(dev);
  encoder.To(dev);
  nlohmann::json r = RunSurprise(model, hash, encoder, c.run, [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  });
  r["options"] = options;
  const std::string& out = c.out;
  if (fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  embody::collect::WriteJsonFileAtomically(out, r);
  WritePlots(out, r);
  std::printf("%s", Table(r).c_str());
  std::printf("wrote %s (plots: %s_<type>.png)%s\n", out.c_str(), (fs::path(out).parent_path() / fs::path(out).stem()).string().c_str(),
              c.clips.empty() ? "" : (", clips " + c.clips).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"surprise: violation-of-expectation tests (possible vs impossible clips) of a world model"};
  SurpriseCli c;
  AddOptions(app, c);
  AddConfigOption(app);
  CLI11_PARSE(app, argc, argv);
  const nlohmann::json options = ProgramOptions(app);  // stored in the results JSON: surprise --config reads it back
  try {
    Run(c, options);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "surprise: error: %s\n", e.what());
    return 1;
  }
}
