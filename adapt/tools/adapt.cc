// adapt: stage two. Trains, per embodiment, a robot dynamics model and an action-conditioned
// interaction predictor on the latents of a frozen encoder, and evaluates them against the
// copy-last-frame baseline.
//   adapt --embodiment ur5                        (data/ur5.h5, models/encoder.pt -> models/ur5/)
//   adapt --embodiment ur5 --init models/franka --episodes 50
//   adapt --embodiment ur5 --eval                 (evaluate models/ur5 only)
//   adapt --bench                                 (training throughput vs a matrix-product peak)
//   adapt --embodiment franka --export            (models/franka/world_model.ts: TorchScript for torch.jit.load)
//   adapt --embodiment franka --levels 2          (also the slow level, models/franka/slow, for plan --hierarchy)
//   srun -n 4 adapt --embodiment ur5 ...          (data-parallel ranks; torchrun's RANK/WORLD_SIZE work too)
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>

#include "adapt/core/defaults.h"
#include "adapt/core/distributed.h"
#include "adapt/core/program_options.h"
#include "adapt/core/training.h"
#include "adapt/encoder/encoder.h"
#include "adapt/encoder/latent_cache.h"
#include "adapt/world_model/adapt_job.h"
#include "adapt/world_model/export.h"
#include "robots/embodiment.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;

// adapt's options: the job they describe (adapt/world_model/adapt_job.h) and what runs instead of it.
struct AdaptOptions {
  AdaptJob job;
  std::string precision = "float32", export_path, device = "auto";
  bool bench = false;
  int bench_steps = 10;
  int levels = 1, slow_frame_skip = 20;
  CLI::Option* trunk_lr_scale = nullptr;
};

// What to read and write, and where to start from.
void AddInputOptions(CLI::App& app, AdaptOptions& o) {
  AdaptJob& job = o.job;
  app.add_option("--embodiment", job.robot, "Robot to adapt to (franka, ur5, humanoid, or your descriptor: path/to/robot.json)");
  app.add_option("--data", job.data, "Dataset (default data/<embodiment>.h5)");
  app.add_option("--encoder", job.encoder,
                 "Frozen encoder: our checkpoint or a TorchScript module (default: the one --init's or --eval's model was trained on, else "
                 "models/encoder.pt, else the only one in models/)");
  app.add_option("--encoder-image-size", job.encoder_image_size, "Input size of a TorchScript encoder without an image_size attribute");
  app.add_option("--out", job.out, "Model folder (default models/<embodiment>)");
  app.add_option("--init", job.init, "Start from another trained model folder (transfer), e.g. models/franka");
  app.add_option("--episodes", job.episodes, "Use only the first N training episodes (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--camera", job.cameras,
                 "Cameras whose frames the model reads, e.g. --camera camera0 camera1 (a simcollect --cameras 2 dataset), "
                 "camera0 robot0_eye_in_hand (--eye-in-hand; the hand's last): each camera's latents become tokens of one frame (default: the "
                 "model's for --eval and --init, else every agent view of the dataset)")
      ->expected(1, -1);
}

// The predictor's shape and its training.
void AddTrainingOptions(CLI::App& app, AdaptOptions& o) {
  AdaptConfig& config = o.job.config;
  app.add_flag("--freeze-trunk", config.freeze_trunk, "Train only the per-embodiment parts (adapters, dynamics)");
  o.trunk_lr_scale = app.add_option("--trunk-lr-scale", config.trunk_lr_scale,
                                    "The shared trunk's learning rate as a fraction of --lr (the per-robot parts keep --lr): default 1, "
                                    "or 0.1 with --init (a start from another robot keeps more of its trunk)")
                         ->check(CLI::Range(0.0, 1.0));
  app.add_option("--steps", config.steps, "Optimization steps")->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--batch", config.batch, "Windows per step")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--lr", config.lr, "Peak learning rate (AdamW, warmup-constant-decay)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--rollout", config.rollout, "Steps of the multi-step rollout loss")->capture_default_str();
  app.add_option("--context", config.predictor.context, "Model steps the predictor sees")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--frame-skip", config.predictor.frame_skip,
                 "Control steps per model step (the predictor's step; actions of a step are concatenated)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--width", config.predictor.dim, "Predictor width")->capture_default_str()->check(CLI::Range(8, 2048));
  app.add_option("--depth", config.predictor.depth, "Predictor layers")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--eval-every", config.eval_every, "Steps between validations (checkpoints, early stopping)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--patience", config.patience, "Validations without improvement before stopping")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--threads", config.threads, "LibTorch threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", config.seed, "Random seed")->capture_default_str();
  app.add_option("--device", o.device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda: training, the latent cache and --bench")
      ->capture_default_str();
  app.add_option("--precision", o.precision,
                 "float32; bf16 (float32 weights, forward passes autocast to bfloat16: for GPUs with bf16 tensor cores); or float64 for numerical "
                 "checks (slower)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bf16", "float64"}));
  app.add_option("--levels", o.levels,
                 "1, or 2: also a slow level in <out>/slow (a model step of --slow-frame-skip control steps, context 1, the same data and "
                 "encoder) for plan --hierarchy, evaluated beside the fast model chained")
      ->capture_default_str()
      ->check(CLI::Range(1, 2));
  app.add_option("--slow-frame-skip", o.slow_frame_skip, "--levels 2: control steps per slow model step (a multiple of --frame-skip)")
      ->capture_default_str()
      ->check(CLI::Range(2, 400));
  app.add_flag("--resume", o.job.resume, "Continue training the model at --out");
  app.add_flag("--overwrite", o.job.overwrite, "Replace the model at --out")->configurable(false);
}

// The evaluation, and the other things adapt does with a model: export, bench, the viewer's decoder.
void AddEvalOptions(CLI::App& app, AdaptOptions& o) {
  EvalOptions& eval = o.job.eval;
  app.add_option("--eval-context", eval.context, "True model steps before an open-loop rollout (0 = the predictor's context)")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_option("--eval-seconds", eval.seconds, "How far ahead open-loop rollouts are evaluated")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 60.0));
  app.add_option("--readout-episodes", eval.readout_episodes, "Training episodes the state read-out is fit on")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--eval-episodes", eval.max_episodes, "Held-out episodes evaluated")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_flag("--eval", o.job.eval_only, "Only evaluate the model at --out");
  app.add_option(
         "--export", o.export_path,
         "Write the model at --out (predictor + dynamics of --embodiment) as TorchScript for torch.jit.load: PATH, or - for <out>/world_model.ts")
      ->expected(0, 1)
      ->default_str("-")
      ->configurable(false);
  app.add_flag("--bench", o.bench,
               "Print training samples/s and GFLOP/s against a matrix-product peak (with --data: also window reads from the files vs kept in memory)")
      ->configurable(false);
  app.add_option("--bench-steps", o.bench_steps, "Training steps timed by --bench")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("--train-decoder", o.job.train_decoder, "Also train a pixel decoder on frozen latents, for the viewer only (<out>/decoder.pt)");
  app.add_option("--decoder-steps", o.job.decoder_steps, "Decoder training steps")->capture_default_str()->check(CLI::Range(1, 1000000));
}

// --bench: the training step on a synthetic batch, and with --data the reader on that dataset's
// latent cache of --encoder.
int Bench(AdaptOptions& o) {
  AdaptJob& job = o.job;
  if (job.data.empty()) return BenchStageTwo(job.config, o.bench_steps);
  job.encoder = ResolveEncoderArg(job.encoder, "").path;
  FrozenEncoder encoder = FrozenEncoder::Load(job.encoder, job.encoder_image_size);
  const std::string camera = job.cameras.empty() ? "camera0" : job.cameras.front();
  return BenchStageTwo(job.config, o.bench_steps, job.data, EnsureLatentCache(encoder, job.data, camera, 64, true).path.string(), camera);
}

// --export: the model at --out as TorchScript.
int Export(const AdaptOptions& o) {
  const AdaptJob& job = o.job;
  const fs::path path = o.export_path.empty() || o.export_path == "-" ? fs::path(job.out) / "world_model.ts" : fs::path(o.export_path);
  const auto lock = LockOutputOnRoot(path, "adapt --export", nullptr);
  std::string hash;
  WorldModel model = LoadWorldModel(job.out, &hash);
  const double error = ExportWorldModel(model, job.embodiment, hash, path);
  std::printf(
      "adapt: exported %s's predictor and dynamics model to %s (TorchScript; reproduces the C++ model to %.1e)\n"
      "  python3 -c \"import torch; m = torch.jit.load('%s'); print(m.embodiment, m.frame_skip)\"\n",
      job.embodiment.c_str(), path.c_str(), error, path.c_str());
  return 0;
}

// The slow level's job (--levels 2): the fast job's data, encoder, cameras and training, in <out>/slow
// with a model step of `frame_skip` control steps and a context of one; metrics.json's options say so.
AdaptJob SlowLevelJob(const AdaptJob& fast, int frame_skip) {
  AdaptJob slow = fast;
  slow.out = (fs::path(fast.out) / "slow").string();
  slow.config.predictor.frame_skip = frame_skip;
  slow.config.predictor.context = 1;
  slow.config.rollout = 1;
  slow.train_decoder = false;
  slow.predictor_flags = {{"--frame-skip", frame_skip}, {"--context", 1}};
  slow.options["out"] = slow.out;
  slow.options["frame-skip"] = frame_skip;
  slow.options["context"] = 1;
  slow.options["rollout"] = 1;
  slow.options["levels"] = 1;
  slow.options["train-decoder"] = false;
  return slow;
}

// The slow level beside the fast model chained to the same horizons (each model's metrics.json: the
// same held-out episodes, each model's own windows): ee read-out gap closed and floor/copy.
std::string CompareLevels(const std::string& fast_dir, const std::string& slow_dir) {
  const auto fast = nlohmann::json::parse(std::ifstream(fs::path(fast_dir) / "metrics.json"));
  const auto slow = nlohmann::json::parse(std::ifstream(fs::path(slow_dir) / "metrics.json"));
  const auto& f = fast.at("tasks").at("all");
  const auto& s = slow.at("tasks").at("all");
  const double fdt = fast.at("seconds_per_step"), sdt = slow.at("seconds_per_step");
  auto num = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); };
  std::string out = "two levels, ee read-out gap closed (1 = as good as the true future; each model's own held-out windows):\n";
  char line[256];
  for (int i = 0; i < slow.at("horizon").get<int>(); ++i) {
    const double t = (i + 1) * sdt;
    const int j = static_cast<int>(std::lround(t / fdt)) - 1;  // the fast model's step at the same time
    const bool both = j >= 0 && j < fast.at("horizon").get<int>();
    std::snprintf(line, sizeof line, "  %5.2f s: slow (%d step%s) %.2f, fast chained (%d steps) %s; floor/copy slow %.2f\n", t, i + 1,
                  i == 0 ? "" : "s", num(s["ee_px_gap_closed"][i]), j + 1,
                  both ? std::to_string(num(f["ee_px_gap_closed"][j])).substr(0, 4).c_str() : "not evaluated (--eval-seconds)",
                  num(s["ee_px_floor"][i]) / num(s["ee_px_copy"][i]));
    out += line;
  }
  return out;
}

int Run(AdaptOptions& o, const CLI::App& app) {
  AdaptJob& job = o.job;
  if (o.levels == 2) {
    if (o.bench || app.count("--export") > 0) throw AdaptError("--levels 2 trains or evaluates two models: not with --bench or --export");
    if (!job.init.empty())
      throw AdaptError("--levels 2 with --init: train the slow level on its own (adapt --out <model>/slow --frame-skip 20 --context 1 --rollout 1)");
    if (job.resume) throw AdaptError("--levels 2 with --resume: resume each level on its own (--out <model> and --out <model>/slow)");
    if (o.slow_frame_skip <= job.config.predictor.frame_skip || o.slow_frame_skip % job.config.predictor.frame_skip != 0) {
      throw AdaptError("--slow-frame-skip must be a multiple of --frame-skip (" + std::to_string(job.config.predictor.frame_skip) + ") and larger");
    }
  } else if (o.slow_frame_skip != AdaptOptions().slow_frame_skip) {
    throw AdaptError("--slow-frame-skip sets the slow level: add --levels 2");
  }
  job.config.bf16 = SetPrecision(o.precision);
  const LaunchInfo launch = ReadLaunchInfo();
  if (launch.world_size > 1 && (o.bench || job.eval_only)) {
    throw AdaptError(std::string(o.bench ? "--bench" : "--eval") + " runs in one process (launched as " + std::to_string(launch.world_size) +
                     " ranks)");
  }
  job.config.device = ResolveDevice(o.device, launch.local_rank).str();
  if (o.bench) return Bench(o);
  if (job.robot.empty()) throw AdaptError("--embodiment is required (e.g. --embodiment ur5)");
  job.embodiment = embody::robots::RobotName(job.robot);  // a descriptor's declared name: data/<name>.h5, models/<name>
  if (job.data.empty()) job.data = "data/" + job.embodiment + ".h5";
  if (job.out.empty()) job.out = "models/" + job.embodiment;
  if (job.overwrite && job.resume) throw AdaptError("--resume and --overwrite exclude each other");
  if (app.count("--export") > 0) {
    if (launch.world_size > 1) throw AdaptError("--export runs in one process");
    return Export(o);
  }
  std::error_code ec;
  if (fs::exists(job.data, ec)) {  // a missing dataset is named first (RunAdaptJob), with the command that makes it
    const EncoderArg chosen = ResolveEncoderArg(job.encoder, !job.init.empty() ? job.init : job.eval_only || job.resume ? job.out : "");
    job.encoder = chosen.path;
    if (!chosen.why.empty()) std::fprintf(stderr, "adapt: --encoder %s (%s)\n", job.encoder.c_str(), chosen.why.c_str());
  }
  std::unique_ptr<DataParallel> group;
  if (launch.world_size > 1) group = DataParallel::Join(launch);
  RunAdaptJob(job, launch, group.get());
  if (o.levels == 2) {
    AdaptJob slow = SlowLevelJob(job, o.slow_frame_skip);
    std::printf("adapt: the slow level, %d control steps per model step, in %s\n", o.slow_frame_skip, slow.out.c_str());
    RunAdaptJob(slow, launch, group.get());
    if (!group || group->is_root()) std::printf("%s", CompareLevels(job.out, slow.out).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adapt: stage two, per-robot dynamics and interaction predictors on a frozen encoder"};
  AdaptOptions o;  // the options bind to the job directly (adapt/world_model/adapt_job.h)
  AddInputOptions(app, o);
  AddTrainingOptions(app, o);
  AddEvalOptions(app, o);
  AddConfigOption(app);
  CLI11_PARSE(app, argc, argv);
  AdaptJob& job = o.job;
  job.options = ProgramOptions(app);
  if (!job.init.empty() && o.trunk_lr_scale->count() == 0) job.config.trunk_lr_scale = kInitTrunkLrScale;
  const std::map<std::string, int> shape = {{"--context", job.config.predictor.context},
                                            {"--frame-skip", job.config.predictor.frame_skip},
                                            {"--width", job.config.predictor.dim},
                                            {"--depth", job.config.predictor.depth}};
  for (const auto& [flag, value] : shape) {
    if (app.count(flag) > 0) job.predictor_flags[flag] = value;
  }
  try {
    return Run(o, app);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adapt: error: %s\n", e.what());
    return 1;
  }
}
