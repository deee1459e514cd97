// adapt: stage two. Trains, per embodiment, a robot dynamics model and an action-conditioned
// interaction predictor on the latents of a frozen encoder, and evaluates them against the
// copy-last-frame baseline.
//   adapt --embodiment ur5                        (data/ur5.h5, models/encoder.pt -> models/ur5/)
//   adapt --embodiment ur5 --init models/franka --episodes 50
//   adapt --embodiment ur5 --eval                 (evaluate models/ur5 only)
//   adapt --bench                                 (training throughput vs a matrix-product peak)
//   adapt --embodiment franka --export            (models/franka/world_model.ts: TorchScript for torch.jit.load)
//   srun -n 4 adapt --embodiment ur5 ...          (data-parallel ranks; torchrun's RANK/WORLD_SIZE work too)
#include <cstdio>

#include <CLI/CLI.hpp>

#include "adapt/core/defaults.h"
#include "adapt/core/distributed.h"
#include "adapt/core/training.h"
#include "adapt/encoder/encoder.h"
#include "adapt/encoder/latent_cache.h"
#include "adapt/world_model/adapt_job.h"
#include "adapt/world_model/export.h"
#include "robots/embodiment.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adapt: stage two, per-robot dynamics and interaction predictors on a frozen encoder"};
  AdaptJob job;  // the options bind to it directly (adapt/world_model/adapt_job.h)
  std::string &embodiment = job.embodiment, &data_path = job.data, &encoder_path = job.encoder, &out = job.out, &init = job.init,
              precision = "float32", export_path;
  AdaptConfig& config = job.config;
  EvalOptions& eval = job.eval;
  bool &eval_only = job.eval_only, &resume = job.resume, &overwrite = job.overwrite, &train_decoder = job.train_decoder, bench = false;
  int &episodes = job.episodes, &encoder_image_size = job.encoder_image_size, &decoder_steps = job.decoder_steps, bench_steps = 10;
  app.add_option("--embodiment", job.robot, "Robot to adapt to (franka, ur5, humanoid, or your descriptor: path/to/robot.json)");
  app.add_option("--data", data_path, "Dataset (default data/<embodiment>.h5)");
  app.add_option("--encoder", encoder_path,
                 "Frozen encoder: our checkpoint or a TorchScript module (default: the one --init's or --eval's model was trained on, else "
                 "models/encoder.pt, else the only one in models/)");
  app.add_option("--encoder-image-size", encoder_image_size, "Input size of a TorchScript encoder without an image_size attribute");
  app.add_option("--out", out, "Model folder (default models/<embodiment>)");
  app.add_option("--init", init, "Start from another trained model folder (transfer), e.g. models/franka");
  app.add_option("--episodes", episodes, "Use only the first N training episodes (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_flag("--freeze-trunk", config.freeze_trunk, "Train only the per-embodiment parts (adapters, dynamics)");
  auto* trunk_lr_scale = app.add_option("--trunk-lr-scale", config.trunk_lr_scale,
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
  app.add_option("--camera", job.cameras,
                 "Cameras whose frames the model reads, e.g. --camera camera0 camera1 (a simcollect --cameras 2 dataset): each camera's "
                 "latents become tokens of one frame (default: the model's for --eval and --init, else every agent view of the dataset)")
      ->expected(1, -1);
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
  app.add_flag("--eval", eval_only, "Only evaluate the model at --out");
  app.add_option(
         "--export", export_path,
         "Write the model at --out (predictor + dynamics of --embodiment) as TorchScript for torch.jit.load: PATH, or - for <out>/world_model.ts")
      ->expected(0, 1)
      ->default_str("-");
  app.add_flag(
      "--bench", bench,
      "Print training samples/s and GFLOP/s against a matrix-product peak (with --data: also window reads from the files vs kept in memory)");
  app.add_option("--bench-steps", bench_steps, "Training steps timed by --bench")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("--train-decoder", train_decoder, "Also train a pixel decoder on frozen latents, for the viewer only (<out>/decoder.pt)");
  app.add_option("--decoder-steps", decoder_steps, "Decoder training steps")->capture_default_str()->check(CLI::Range(1, 1000000));
  std::string device = "auto";
  app.add_option("--device", device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda: training, the latent cache and --bench")
      ->capture_default_str();
  app.add_option("--precision", precision,
                 "float32; bf16 (float32 weights, forward passes autocast to bfloat16: for GPUs with bf16 tensor cores); or float64 for numerical "
                 "checks (slower)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "bf16", "float64"}));
  app.add_flag("--resume", resume, "Continue training the model at --out");
  app.add_flag("--overwrite", overwrite, "Replace the model at --out");
  CLI11_PARSE(app, argc, argv);
  if (!job.init.empty() && trunk_lr_scale->count() == 0) config.trunk_lr_scale = kInitTrunkLrScale;
  const std::map<std::string, int> shape = {{"--context", config.predictor.context},
                                            {"--frame-skip", config.predictor.frame_skip},
                                            {"--width", config.predictor.dim},
                                            {"--depth", config.predictor.depth}};
  for (const auto& [flag, value] : shape) {
    if (app.count(flag) > 0) job.predictor_flags[flag] = value;
  }
  try {
    config.bf16 = SetPrecision(precision);
    const LaunchInfo launch = ReadLaunchInfo();
    if (launch.world_size > 1 && (bench || eval_only)) {
      throw AdaptError(std::string(bench ? "--bench" : "--eval") + " runs in one process (launched as " + std::to_string(launch.world_size) +
                       " ranks)");
    }
    config.device = ResolveDevice(device, launch.local_rank).str();
    if (bench && data_path.empty()) return BenchStageTwo(config, bench_steps);
    if (bench) {  // and the reader, on that dataset's latent cache of --encoder
      job.encoder = ResolveEncoderArg(job.encoder, "").path;
      FrozenEncoder encoder = FrozenEncoder::Load(job.encoder, job.encoder_image_size);
      const std::string camera = job.cameras.empty() ? "camera0" : job.cameras.front();
      return BenchStageTwo(config, bench_steps, data_path, EnsureLatentCache(encoder, data_path, camera, 64, true).path.string(), camera);
    }
    if (job.robot.empty()) throw AdaptError("--embodiment is required (e.g. --embodiment ur5)");
    embodiment = embody::robots::RobotName(job.robot);  // a descriptor's declared name: data/<name>.h5, models/<name>
    if (data_path.empty()) data_path = "data/" + embodiment + ".h5";
    if (out.empty()) out = "models/" + embodiment;
    if (overwrite && resume) throw AdaptError("--resume and --overwrite exclude each other");
    if (app.count("--export") > 0) {
      if (launch.world_size > 1) throw AdaptError("--export runs in one process");
      const fs::path path = export_path.empty() || export_path == "-" ? fs::path(out) / "world_model.ts" : fs::path(export_path);
      const auto lock = LockOutputOnRoot(path, "adapt --export", nullptr);
      std::string hash;
      WorldModel model = LoadWorldModel(out, &hash);
      const double error = ExportWorldModel(model, embodiment, hash, path);
      std::printf(
          "adapt: exported %s's predictor and dynamics model to %s (TorchScript; reproduces the C++ model to %.1e)\n"
          "  python3 -c \"import torch; m = torch.jit.load('%s'); print(m.embodiment, m.frame_skip)\"\n",
          embodiment.c_str(), path.c_str(), error, path.c_str());
      return 0;
    }
    std::error_code ec;
    if (fs::exists(data_path, ec)) {  // a missing dataset is named first (RunAdaptJob), with the command that makes it
      const EncoderArg chosen = ResolveEncoderArg(encoder_path, !init.empty() ? init : eval_only || resume ? out : "");
      encoder_path = chosen.path;
      if (!chosen.why.empty()) std::fprintf(stderr, "adapt: --encoder %s (%s)\n", encoder_path.c_str(), chosen.why.c_str());
    }
    std::unique_ptr<DataParallel> group;
    if (launch.world_size > 1) group = DataParallel::Join(launch);
    RunAdaptJob(job, launch, group.get());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adapt: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
