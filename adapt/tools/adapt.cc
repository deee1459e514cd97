// adapt: stage two. Trains, per embodiment, a robot dynamics model and an action-conditioned
// interaction predictor on the latents of a frozen encoder, and evaluates them against the
// copy-last-frame baseline.
//   adapt --embodiment ur5                        (data/ur5.h5, models/encoder.pt -> models/ur5/)
//   adapt --embodiment ur5 --init models/franka --episodes 50
//   adapt --embodiment ur5 --eval                 (evaluate models/ur5 only)
//   adapt --bench                                 (training throughput vs a matrix-product peak)
//   adapt --embodiment franka --export            (models/franka/world_model.ts: TorchScript for torch.jit.load)
//   srun -n 4 adapt --embodiment ur5 ...          (data-parallel ranks; torchrun's RANK/WORLD_SIZE work too)
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>

#include "adapt/decoder.h"
#include "adapt/distributed.h"
#include "adapt/export.h"
#include "adapt/latent_cache.h"
#include "adapt/plot.h"
#include "adapt/stage_two.h"
#include "adapt/training.h"
#include "adapt/video_data.h"
#include "collect/config.h"

namespace {

using namespace embody::adapt;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<double> Range(size_t n, double first = 1) {
  std::vector<double> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = first + static_cast<double>(i);
  return x;
}

void WritePlots(const fs::path& dir, const nlohmann::json& metrics, const TrainStats* stats) {
  const auto& all = metrics.at("tasks").at("all");
  const std::string emb = metrics.at("embodiment");
  const auto model = all.at("latent_l1").get<std::vector<double>>(), copy = all.at("copy_last_l1").get<std::vector<double>>();
  WriteLinePlot(dir / "latent_error.png",
                {{"predictor", Range(model.size()), model, {31, 119, 180}}, {"copy-last", Range(copy.size()), copy, {214, 39, 40}}},
                {emb + ": latent L1, held-out episodes", "horizon (model steps)", "L1"});
  // The state read-out: imagined vs the floor (true future latents) and copy-last, in seconds ahead.
  const double dt = metrics.at("seconds_per_step");
  auto seconds = [&](size_t n) {
    std::vector<double> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = (i + 1) * dt;
    return x;
  };
  auto series = [&](const char* key) {
    std::vector<double> v;
    for (const auto& e : all.at(key)) v.push_back(e.is_number() ? e.get<double>() : 0.0);
    return v;
  };
  const auto imagined = series("ee_px_imagined"), floor = series("ee_px_floor"), copied = series("ee_px_copy");
  WriteLinePlot(dir / "readout_error.png",
                {{"imagined", seconds(imagined.size()), imagined, {31, 119, 180}},
                 {"true future (floor)", seconds(floor.size()), floor, {44, 160, 44}},
                 {"copy-last", seconds(copied.size()), copied, {214, 39, 40}}},
                {emb + ": end-effector read-out error, held-out episodes", "seconds ahead", "error (px)"});
  const auto ee = all.at("ee_error_cm").get<std::vector<double>>();
  WriteLinePlot(dir / "dynamics_error.png", {{"ee position (cm)", Range(ee.size()), ee, {44, 160, 44}}},
                {emb + ": dynamics model, open loop", "horizon (steps)", "ee error (cm)"});
  if (stats && !stats->history.empty()) {
    PlotSeries train{"train loss", {}, {}, {31, 119, 180}}, val{"validation loss", {}, {}, {255, 127, 14}};
    for (const auto& [step, t, v] : stats->history) {
      if (step > 0) train.x.push_back(step), train.y.push_back(t);
      val.x.push_back(step);
      val.y.push_back(v);
    }
    WriteLinePlot(dir / "training.png", {train, val}, {emb + ": training", "step", "loss"});
  }
}

// Training throughput and achieved GFLOP/s of the training step against a matrix-product peak,
// both measured here. FLOPs are counted from the architecture (multiply-adds x 2, backward = 2x forward).
int Bench(AdaptConfig config, int steps) {
  const int threads = config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  torch::manual_seed(config.seed);
  const auto& p = config.predictor;
  const torch::Device dev(config.device);
  // Waits for the device's queued work (a host read of a result does; a no-op on the CPU).
  auto sync = [](const torch::Tensor& t) { (void)t.sum().item<double>(); };
  // Peak: square matrix products, best of several (larger on a GPU, where 1024 cannot fill it).
  const int64_t n = dev.is_cuda() ? 8192 : 1024;
  const auto a = torch::randn({n, n}, torch::TensorOptions().device(dev)), b = torch::randn({n, n}, torch::TensorOptions().device(dev));
  sync(torch::mm(a, b));
  double peak = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t = Clock::now();
    torch::Tensor last;
    for (int r = 0; r < 4; ++r) last = torch::mm(a, b);
    sync(last);
    peak = std::max(peak, 4 * 2.0 * n * n * n / Since(t) / 1e9);
  }
  WorldModel model(p);
  EmbodimentSpec spec{"bench", 7, 2, 7, "dx,dy,dz,drx,dry,drz,gripper"};
  const int P = spec.proprio_dim();
  model.AddEmbodiment(spec, {torch::zeros({P}), torch::ones({P}), torch::zeros({P}), torch::ones({P})});
  model.To(dev);
  torch::optim::AdamW opt(model.Parameters("bench", false), torch::optim::AdamWOptions(config.lr));
  const int c = p.context, bsz = config.batch;
  // A synthetic batch shaped like a real one: windows of c + 1 frames, and for the dynamics model
  // every transition of each window's episode (59 at the default 60 steps).
  constexpr int kTransitions = 59;
  StageTwoData::Window w;
  w.latents = torch::randn({bsz, c + 1, p.tokens, p.latent_dim});
  w.proprio = torch::randn({bsz, c + 1, P});
  w.actions = torch::rand({bsz, c + 1, 7 * p.frame_skip}) * 2 - 1;
  w.camera = torch::randn({bsz, 12});
  w.dyn_proprio = torch::randn({bsz * kTransitions, P});
  w.dyn_actions = torch::rand({bsz * kTransitions, 7}) * 2 - 1;
  w.dyn_next = torch::randn({bsz * kTransitions, P});
  for (torch::Tensor* t : {&w.latents, &w.proprio, &w.actions, &w.camera, &w.dyn_proprio, &w.dyn_actions, &w.dyn_next}) *t = t->to(dev);
  auto step = [&] {  // exactly the training step's losses
    auto loss = StageTwoLosses(model, "bench", w, c, config.rollout).total();
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  // Forward multiply-adds of one window of f frames.
  auto forward_macs = [&](int f) {
    const double L = f * (p.tokens + 4.0), d = p.dim;
    double macs = f * p.tokens * (double)p.latent_dim * d * 2;              // latent in + out projections
    macs += p.depth * (L * 4 * d * d + L * 2 * 4 * d * d + 2 * L * L * d);  // qkv+out, MLP, attention
    return macs;
  };
  double macs = forward_macs(c);
  for (int t = c - config.rollout + 2; t <= c; ++t) macs += forward_macs(t);
  macs += kTransitions * ((P + 7) * 256.0 + 256.0 * 256 + 256.0 * P);  // dynamics MLP
  const double flops_per_step = 3 * 2 * macs * bsz;
  step();
  sync(model.Parameters("bench", false).front());
  const auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  sync(model.Parameters("bench", false).front());
  const double secs = Since(t0);
  const double achieved = flops_per_step * steps / secs / 1e9;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("adapt bench: %s, %d threads, batch %d, context %d, %d tokens x %d, width %d, depth %d\n", dev.str().c_str(), threads, bsz, c, p.tokens,
              p.latent_dim, p.dim, p.depth);
  std::printf("  training: %.1f samples/s (%.3f s/step over %d steps)\n", steps * bsz / secs, secs / steps, steps);
  std::printf("  achieved: %.1f GFLOP/s (%.2f GFLOP per step, counted from the architecture)\n", achieved, flops_per_step / 1e9);
  std::printf("  peak:     %.1f GFLOP/s (%lldx%lld float32 matrix product on %s, same run)\n", peak, static_cast<long long>(n),
              static_cast<long long>(n), dev.str().c_str());
  std::printf("  ratio:    %.2f of the matrix-product peak\n", achieved / peak);
  std::printf("  max RSS:  %.0f MB (synthetic batch, no dataset; host memory)\n", usage.ru_maxrss / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adapt: stage two, per-robot dynamics and interaction predictors on a frozen encoder"};
  std::string embodiment, data_path, encoder_path = "models/encoder.pt", out, init, camera = "camera0", precision = "float32";
  AdaptConfig config;
  EvalOptions eval;
  bool eval_only = false, bench = false, resume = false, overwrite = false;
  std::string export_path;
  int episodes = 0, bench_steps = 10, encoder_image_size = 0, decoder_steps = 300;
  bool train_decoder = false;
  app.add_option("--embodiment", embodiment, "Robot to adapt to (franka, ur5, humanoid, or yours)");
  app.add_option("--data", data_path, "Dataset (default data/<embodiment>.h5)");
  app.add_option("--encoder", encoder_path, "Frozen encoder: our checkpoint or a TorchScript module")->capture_default_str();
  app.add_option("--encoder-image-size", encoder_image_size, "Input size of a TorchScript encoder without an image_size attribute");
  app.add_option("--out", out, "Model folder (default models/<embodiment>)");
  app.add_option("--init", init, "Start from another trained model folder (transfer), e.g. models/franka");
  app.add_option("--episodes", episodes, "Use only the first N training episodes (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_flag("--freeze-trunk", config.freeze_trunk, "Train only the per-embodiment parts (adapters, dynamics)");
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
  app.add_option("--camera", camera, "Camera whose frames the encoder sees")->capture_default_str();
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
  app.add_flag("--bench", bench, "Print training samples/s and GFLOP/s against a matrix-product peak");
  app.add_option("--bench-steps", bench_steps, "Training steps timed by --bench")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_flag("--train-decoder", train_decoder, "Also train a pixel decoder on frozen latents, for the viewer only (<out>/decoder.pt)");
  app.add_option("--decoder-steps", decoder_steps, "Decoder training steps")->capture_default_str()->check(CLI::Range(1, 1000000));
  std::string device = "auto";
  app.add_option("--device", device, "auto (CUDA when LibTorch has it and sees a GPU), cpu or cuda: training, the latent cache and --bench")
      ->capture_default_str();
  app.add_option("--precision", precision, "float32, or float64 for numerical checks (slower)")
      ->capture_default_str()
      ->check(CLI::IsMember({"float32", "float64"}));
  app.add_flag("--resume", resume, "Continue training the model at --out");
  app.add_flag("--overwrite", overwrite, "Replace the model at --out");
  CLI11_PARSE(app, argc, argv);
  try {
    SetPrecision(precision);
    const LaunchInfo launch = ReadLaunchInfo();
    if (launch.world_size > 1 && (bench || eval_only)) {
      throw AdaptError(std::string(bench ? "--bench" : "--eval") + " runs in one process (launched as " + std::to_string(launch.world_size) +
                       " ranks)");
    }
    config.device = ResolveDevice(device, launch.local_rank).str();
    if (bench) return Bench(config, bench_steps);
    if (embodiment.empty()) throw AdaptError("--embodiment is required (e.g. --embodiment ur5)");
    if (data_path.empty()) data_path = "data/" + embodiment + ".h5";
    if (out.empty()) out = "models/" + embodiment;
    if (overwrite && resume) throw AdaptError("--resume and --overwrite exclude each other");
    if (app.count("--export") > 0) {
      if (launch.world_size > 1) throw AdaptError("--export runs in one process");
      const fs::path path = export_path.empty() || export_path == "-" ? fs::path(out) / "world_model.ts" : fs::path(export_path);
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
    if (!fs::exists(data_path, ec)) {
      throw AdaptError("no " + data_path + " — run: simcollect --robot " + embodiment + " --episodes 500 --out " + data_path);
    }
    if (!fs::exists(encoder_path, ec)) {
      throw AdaptError("no encoder " + encoder_path + " — run: pretrain --data " + data_path + " --out " + encoder_path +
                       " (or pass --encoder with a TorchScript module)");
    }
    if (!init.empty() && !fs::exists(fs::path(init) / "model.pt", ec) && !fs::is_regular_file(init, ec)) {
      throw AdaptError("no model to start from at " + init + " — run: adapt --embodiment <robot> --out " + init);
    }
    torch::set_num_threads(ThreadsPerRank(config.threads, launch));
    std::unique_ptr<DataParallel> group;
    if (launch.world_size > 1) group = DataParallel::Join(launch);
    const bool root = !group || group->is_root();
    FrozenEncoder encoder = FrozenEncoder::Load(encoder_path, encoder_image_size);
    encoder.To(torch::Device(config.device));
    // The encoder runs once per frame, into the cache; training only reads the cache. With ranks,
    // rank 0 builds it while the others wait, then they find it in place.
    CacheStatus cache;
    if (root) cache = EnsureLatentCache(encoder, data_path, camera, 64, true);
    if (group) group->Barrier();
    if (!root) cache = EnsureLatentCache(encoder, data_path, camera, 64, true);
    if (cache.built) std::fprintf(stderr, "adapt: encoded %lld frames into %s\n", static_cast<long long>(cache.frames), cache.path.c_str());
    const StageTwoData data(data_path, cache.path, camera, episodes);
    if (data.spec().name != embodiment) {
      throw AdaptError(data_path + " holds " + data.spec().name + " episodes, not " + embodiment + " (pass --data data/" + embodiment + ".h5)");
    }
    TrainStats stats;
    bool trained = false;
    if (!eval_only) {
      config.predictor.latent_dim = data.latent_dim();
      config.predictor.tokens = data.tokens();
      if (overwrite && root) {
        fs::remove(fs::path(out) / "model.pt");
        fs::remove(fs::path(out) / "train_state.pt");
      }
      if (group) group->Barrier();
      std::unique_ptr<WorldModel> from;  // --init: the model to transfer from, loaded once
      if (!init.empty()) {
        std::string init_hash;
        from = std::make_unique<WorldModel>(LoadWorldModel(init, &init_hash));
        if (init_hash != encoder.hash()) {
          throw AdaptError(init + " was trained on another encoder (" + init_hash + ", this one is " + encoder.hash() + ")");
        }
        config.predictor = from->config();
      }
      torch::manual_seed(config.seed);
      WorldModel model(config.predictor);
      model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
      if (from) {
        for (const auto& what : model.InitFrom(*from, embodiment))
          std::fprintf(stderr, "adapt: initialized %s from %s\n", what.c_str(), init.c_str());
      } else {
        model.SetLatentDeltaScale(data.LatentDeltaScale(config.predictor.frame_skip));
      }
      if (root) {
        std::fprintf(stderr, "adapt: %s, %zu training / %zu held-out episodes, %d tokens x %d per frame\n", embodiment.c_str(),
                     data.episodes("train").size(), data.episodes("valid").size(), data.tokens(), data.latent_dim());
      }
      if (group && root) {
        std::fprintf(stderr, "adapt: %d data-parallel ranks (%s), global batch %d, %d per rank\n", launch.world_size, launch.launcher.c_str(),
                     config.batch, config.batch / launch.world_size);
      }
      StageTwoTrainer trainer(config, data, std::move(model), out, resume, group.get());
      stats = trainer.Train();
      if (!root) return 0;  // rank 0 evaluates and writes
      trained = true;
      std::fprintf(stderr, "adapt: best validation loss %.4f at step %d of %d%s, %.1f samples/s\n", stats.best_val, stats.best_step, stats.step,
                   stats.early_stopped ? " (early stop)" : "", stats.samples_per_s);
    }
    std::string model_hash;
    WorldModel model = LoadWorldModel(out, &model_hash);
    if (model_hash != data.encoder_hash()) {
      throw AdaptError(out + " was trained on the latents of encoder " + model_hash + "; " + encoder_path + " is " + data.encoder_hash());
    }
    model.spec(embodiment);
    torch::manual_seed(config.seed);
    nlohmann::json metrics = Evaluate(model, data, eval);
    if (trained) {
      metrics["train"] = {{"config", config.ToJson()},
                          {"steps", stats.step},
                          {"best_step", stats.best_step},
                          {"best_val", stats.best_val},
                          {"early_stopped", stats.early_stopped},
                          {"samples_per_s", stats.samples_per_s},
                          {"train_episodes", data.episodes("train").size()},
                          {"init", init}};
    }
    std::printf("%s", FormatEvalTable(metrics).c_str());
    fs::create_directories(out);
    embody::collect::WriteJsonFileAtomically(fs::path(out) / "metrics.json", metrics);
    WritePlots(out, metrics, trained ? &stats : nullptr);
    std::printf("adapt: metrics and plots in %s/\n", out.c_str());
    if (train_decoder) {
      const DecoderStats d = TrainDecoder(data, decoder_steps, config.seed, fs::path(out) / "decoder.pt", true);
      std::printf("adapt: visualization decoder %s/decoder.pt: pixel L1 %.4f -> %.4f (held-out %.4f); never used by the predictor\n", out.c_str(),
                  d.first_loss, d.last_loss, d.val_loss);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adapt: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
