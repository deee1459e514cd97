#include "adapt/world_model/adapt_job.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "adapt/core/plot.h"
#include "adapt/core/training.h"
#include "adapt/encoder/latent_cache.h"
#include "adapt/world_model/decoder_training.h"
#include "collect/config.h"
#include "collect/dataset.h"

namespace embody::adapt {
namespace {

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

// Waits for the device's queued work (a host read of a result does; a no-op on the CPU).
void Sync(const torch::Tensor& t) { (void)t.sum().item<double>(); }

// GFLOP/s of n x n matrix products on `dev`, best of several, in the precision the step runs its
// products in (bfloat16 under --precision bf16).
double MatmulPeak(const torch::Device& dev, bool bf16, int64_t n) {
  const auto peak_options = torch::TensorOptions().device(dev).dtype(bf16 ? torch::kBFloat16 : torch::kFloat);
  const auto a = torch::randn({n, n}, peak_options), b = torch::randn({n, n}, peak_options);
  Sync(torch::mm(a, b));
  double peak = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t = Clock::now();
    torch::Tensor last;
    for (int r = 0; r < 4; ++r) last = torch::mm(a, b);
    Sync(last);
    peak = std::max(peak, 4 * 2.0 * n * n * n / Since(t) / 1e9);
  }
  return peak;
}

// Reading: the training batches' windows (the same draws) from the files every time, then from the
// episodes kept in memory (each already read once, as it is after the first steps of a training run).
void BenchReading(const AdaptConfig& config, int steps, const std::string& data, const std::string& cache, const std::string& camera) {
  const auto& p = config.predictor;
  const int c = p.context, bsz = config.batch;
  double per_window[2] = {0, 0};
  const int windows = steps * bsz;
  for (int kept = 0; kept < 2; ++kept) {
    const StageTwoData d(data, cache, camera, 0, /*check_frames=*/false, kept ? StageTwoData::kKeepBytes : 0);
    if (kept && !d.keeps_episodes()) throw AdaptError(data + " is too large to keep in memory: nothing to compare");
    std::mt19937_64 rng(config.seed);
    const auto drawn = d.DrawWindows("train", windows, c + 1, p.frame_skip, &rng);
    if (kept) {
      for (const auto& ep : d.episodes("train")) d.Read(ep, 0, 1);
    }
    const auto t = Clock::now();
    for (const auto& w : drawn) d.Read(*w.episode, w.first, c + 1, p.frame_skip);
    per_window[kept] = Since(t) / windows;
  }
  std::printf("  reading:  %.0f us per window from the files, %.0f us kept in memory (%.1fx; %d windows of %s, %.1f ms of a step of %d read)\n",
              1e6 * per_window[0], 1e6 * per_window[1], per_window[0] / std::max(1e-12, per_window[1]), windows, data.c_str(),
              1e3 * per_window[1] * bsz, bsz);
}

}  // namespace

// Training throughput and achieved GFLOP/s of the training step against a matrix-product peak,
// both measured here. FLOPs are counted from the architecture (multiply-adds x 2, backward = 2x forward).

int BenchStageTwo(AdaptConfig config, int steps, const std::string& data, const std::string& cache, const std::string& camera) {
  const int threads = config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  torch::manual_seed(config.seed);
  const auto& p = config.predictor;
  const torch::Device dev(config.device);
  const int64_t n = dev.is_cuda() ? 8192 : 1024;  // larger on a GPU, where 1024 cannot fill it
  const double peak = MatmulPeak(dev, config.bf16, n);
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
  w.camera = torch::randn({bsz, 12 * p.views()});
  w.dyn_proprio = torch::randn({bsz * kTransitions, P});
  w.dyn_actions = torch::rand({bsz * kTransitions, 7}) * 2 - 1;
  w.dyn_next = torch::randn({bsz * kTransitions, P});
  for (torch::Tensor* t : {&w.latents, &w.proprio, &w.actions, &w.camera, &w.dyn_proprio, &w.dyn_actions, &w.dyn_next}) *t = t->to(dev);
  auto step = [&] {  // exactly the training step's losses
    auto loss = StageTwoLosses(model, "bench", w, c, config.rollout, nullptr, config.bf16).total();
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
  Sync(model.Parameters("bench", false).front());
  const auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  Sync(model.Parameters("bench", false).front());
  const double secs = Since(t0);
  const double achieved = flops_per_step * steps / secs / 1e9;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("adapt bench: %s%s, %d threads, batch %d, context %d, %d tokens x %d, width %d, depth %d\n", dev.str().c_str(),
              config.bf16 ? " (bf16 autocast)" : "", threads, bsz, c, p.tokens, p.latent_dim, p.dim, p.depth);
  std::printf("  training: %.1f samples/s (%.3f s/step over %d steps)\n", steps * bsz / secs, secs / steps, steps);
  std::printf("  achieved: %.1f GFLOP/s (%.2f GFLOP per step, counted from the architecture)\n", achieved, flops_per_step / 1e9);
  std::printf("  peak:     %.1f GFLOP/s (%lldx%lld %s matrix product on %s, same run)\n", peak, static_cast<long long>(n), static_cast<long long>(n),
              config.bf16 ? "bfloat16" : "float32", dev.str().c_str());
  std::printf("  ratio:    %.2f of the matrix-product peak\n", achieved / peak);
  std::printf("  max RSS:  %.0f MB (synthetic batch, no dataset; host memory)\n", usage.ru_maxrss / 1024.0);
  if (!data.empty()) BenchReading(config, steps, data, cache, camera);
  return 0;
}

namespace {

// A predictor option the user gave that the loaded model (`role`: the model --init starts from, or
// the one --eval evaluates) would override: refused, naming both values.
void RefusePredictorOverrides(const AdaptJob& job, const PredictorConfig& loaded, const std::string& path, const std::string& role,
                              const std::string& remedy) {
  const std::map<std::string, std::pair<const char*, int>> of_model = {{"--context", {"context", loaded.context}},
                                                                       {"--frame-skip", {"frame skip", loaded.frame_skip}},
                                                                       {"--width", {"width", loaded.dim}},
                                                                       {"--depth", {"depth", loaded.depth}}};
  for (const auto& [flag, value] : job.predictor_flags) {
    const auto& [name, theirs] = of_model.at(flag);
    if (value == theirs) continue;
    throw AdaptError(flag + " " + std::to_string(value) + " conflicts with " + path + ", " + role + " (" + name + " " + std::to_string(theirs) +
                     "): its predictor keeps its own shape; drop " + flag + remedy);
  }
}

}  // namespace

namespace {

// What the job reads must be there; each refusal names the command that makes it.
void RequireInputs(const AdaptJob& job) {
  std::error_code ec;
  if (!fs::exists(job.data, ec)) {
    throw AdaptError("no " + job.data + " — run: simcollect --robot " + (job.robot.empty() ? job.embodiment : job.robot) + " --episodes 500 --out " +
                     job.data);
  }
  if (!fs::exists(job.encoder, ec)) {
    throw AdaptError("no encoder " + job.encoder + " — run: pretrain --data " + job.data + " --out " + job.encoder +
                     " (or pass --encoder with a TorchScript module)");
  }
  if (!job.init.empty() && !fs::exists(fs::path(job.init) / "model.pt", ec) && !fs::is_regular_file(job.init, ec)) {
    throw AdaptError("no model to start from at " + job.init + " — run: adapt --embodiment <robot> --out " + job.init);
  }
}

// The cameras: as given, else those of the model evaluated or started from, else every agent view
// of the dataset (two views carry what one leaves ambiguous: docs/world-model.md). A model of other
// cameras is refused here, before their caches are encoded.
void ResolveCameras(AdaptJob& job, const WorldModel* from, const WorldModel* evaluated, bool root) {
  if (job.cameras.empty()) {
    if (from || evaluated) {
      job.cameras = (from ? from : evaluated)->config().cameras;
    } else {
      try {
        job.cameras = collect::Dataset(job.data).AgentCameras();
      } catch (const collect::DatasetError& e) {
        throw AdaptError(e.what());
      }
      if (root && job.cameras.size() > 1) {
        std::string list;
        for (const auto& c : job.cameras) list += (list.empty() ? "" : " ") + c;
        std::fprintf(stderr, "adapt: reading the dataset's views %s (--camera picks others)\n", list.c_str());
      }
    }
  }
  auto cameras_differ = [&](const WorldModel& m, const std::string& path) {
    return AdaptError(path + " reads cameras " + nlohmann::json(m.config().cameras).dump() + ", not " + nlohmann::json(job.cameras).dump());
  };
  if (from && from->config().cameras != job.cameras) {
    throw AdaptError(std::string(cameras_differ(*from, job.init).what()) + " (a model transfers between robots with the same views)");
  }
  if (evaluated && evaluated->config().cameras != job.cameras) throw cameras_differ(*evaluated, job.out);
  for (size_t c = 0; c + 1 < job.cameras.size(); ++c) {
    if (IsHandCamera(job.cameras[c])) {
      throw AdaptError("--camera: list the hand's " + job.cameras[c] + " last (plan renders the agent views, then the hand's)");
    }
  }
}

// The encoder runs once per frame, into the cache (one per camera); training only reads the caches.
// With ranks, rank 0 builds them while the others wait, then they find them in place. Returns the
// caches' paths; *built: whether one was built just now.
std::vector<fs::path> EnsureCaches(const AdaptJob& job, FrozenEncoder& encoder, const DataParallel* group, bool* built) {
  const bool root = !group || group->is_root();
  std::vector<CacheStatus> caches;
  auto ensure_caches = [&] {
    caches.clear();
    for (const auto& camera : job.cameras) caches.push_back(EnsureLatentCache(encoder, job.data, camera, 64, true));
  };
  std::string cache_error;
  if (root) {
    try {
      ensure_caches();
    } catch (const std::exception& e) {
      cache_error = e.what();
    }
  }
  if (group) {  // the waiting ranks learn of a failure instead of waiting for the collective's timeout
    auto failed = torch::full({1}, cache_error.empty() ? 0.0 : 1.0);
    group->AllReduceSum({failed});
    if (failed.item<double>() > 0 && !root) throw AdaptError("rank 0 could not build the latent cache (its log says why)");
  }
  if (!cache_error.empty()) throw AdaptError(cache_error);
  if (!root) ensure_caches();
  std::vector<fs::path> cache_paths;
  *built = false;
  for (const CacheStatus& cache : caches) {
    if (cache.built) std::fprintf(stderr, "adapt: encoded %lld frames into %s\n", static_cast<long long>(cache.frames), cache.path.c_str());
    cache_paths.push_back(cache.path);
    *built = *built || cache.built;
  }
  return cache_paths;
}

// Trains the model into job.out (from --init's model `from` when given, which must share the
// encoder `encoder_hash`); returns the training's stats.
TrainStats TrainModel(AdaptJob& job, const StageTwoData& data, const WorldModel* from, const std::string& init_hash, const std::string& encoder_hash,
                      const LaunchInfo& launch, const DataParallel* group) {
  const bool root = !group || group->is_root();
  job.config.predictor.latent_dim = data.latent_dim();
  job.config.predictor.tokens = data.tokens();
  job.config.predictor.cameras = job.cameras;
  if (job.overwrite && root) {
    fs::remove(fs::path(job.out) / "model.pt");
    fs::remove(fs::path(job.out) / "train_state.pt");
  }
  if (group) group->Barrier();
  if (from) {
    if (init_hash != encoder_hash) {
      throw AdaptError(job.init + " was trained on another encoder (" + init_hash + ", this one is " + encoder_hash + ")");
    }
    job.config.predictor = from->config();
  }
  torch::manual_seed(job.config.seed);
  WorldModel model(job.config.predictor);
  model.AddEmbodiment(data.spec(), data.ComputeNormalizer());
  if (from) {
    for (const auto& what : model.InitFrom(*from, job.embodiment))
      std::fprintf(stderr, "adapt: initialized %s from %s\n", what.c_str(), job.init.c_str());
  } else {
    model.SetLatentDeltaScale(data.LatentDeltaScale(job.config.predictor.frame_skip));
  }
  if (root) {
    std::fprintf(stderr, "adapt: %s, %zu training / %zu held-out episodes, %d tokens x %d per frame\n", job.embodiment.c_str(),
                 data.episodes("train").size(), data.episodes("valid").size(), data.tokens(), data.latent_dim());
  }
  if (group && root) {
    std::fprintf(stderr, "adapt: %d data-parallel ranks (%s), global batch %d, %d per rank\n", launch.world_size, launch.launcher.c_str(),
                 job.config.batch, job.config.batch / launch.world_size);
  }
  StageTwoTrainer trainer(job.config, data, std::move(model), job.out, job.resume, group);
  return trainer.Train();
}

// Evaluates `model` on the held-out episodes and writes metrics.json (with the training's stats when
// it trained just now), the plots, and with --train-decoder the viewer's decoder.
void EvaluateAndWrite(const AdaptJob& job, const StageTwoData& data, WorldModel& model, const TrainStats* trained) {
  model.spec(job.embodiment);
  torch::manual_seed(job.config.seed);
  nlohmann::json metrics = Evaluate(model, data, job.eval);
  if (trained) {
    metrics["train"] = {{"config", job.config.ToJson()},
                        {"steps", trained->step},
                        {"best_step", trained->best_step},
                        {"best_val", trained->best_val},
                        {"early_stopped", trained->early_stopped},
                        {"samples_per_s", trained->samples_per_s},
                        {"train_episodes", data.episodes("train").size()},
                        {"init", job.init}};
  }
  // The robot as its dataset recorded it (a descriptor by its absolute path): plan and surprise find
  // your own robot's scene from the model folder (adapt/core/defaults.h).
  const nlohmann::json collected = collect::Dataset(job.data).config();
  if (collected.contains("robot") && collected["robot"].is_string()) metrics["robot"] = collected["robot"];
  metrics["encoder"] = fs::absolute(job.encoder).lexically_normal().string();  // plan's, surprise's and the viewer's default --encoder
  if (!job.options.is_null()) metrics["options"] = job.options;
  std::printf("%s", FormatEvalTable(metrics).c_str());
  fs::create_directories(job.out);
  embody::collect::WriteJsonFileAtomically(fs::path(job.out) / "metrics.json", metrics);
  WritePlots(job.out, metrics, trained);
  std::printf("adapt: metrics and plots in %s/\n", job.out.c_str());
  if (job.train_decoder) {
    const DecoderStats d = TrainDecoder(data, job.decoder_steps, job.config.seed, fs::path(job.out) / "decoder.pt", true);
    std::printf("adapt: visualization decoder %s/decoder.pt: pixel L1 %.4f -> %.4f (held-out %.4f); never used by the predictor\n", job.out.c_str(),
                d.first_loss, d.last_loss, d.val_loss);
  }
}

}  // namespace

void RunAdaptJob(AdaptJob job, const LaunchInfo& launch, const DataParallel* group) {
  RequireInputs(job);
  torch::set_num_threads(ThreadsPerRank(job.config.threads, launch));
  const bool root = !group || group->is_root();
  // One writer per model folder: a second adapt on it (--overwrite, --resume, --eval too) is refused.
  const auto lock = LockOutputOnRoot(job.out, "adapt", group);
  // The models read before any cache is built (each once): --init's, and --eval's.
  std::unique_ptr<WorldModel> from, evaluated;
  std::string init_hash, model_hash;
  if (!job.init.empty()) {
    from = std::make_unique<WorldModel>(LoadWorldModel(job.init, &init_hash));
    RefusePredictorOverrides(job, from->config(), job.init, "the model --init starts from", ", or train from scratch without --init");
  }
  if (job.eval_only) {
    evaluated = std::make_unique<WorldModel>(LoadWorldModel(job.out, &model_hash));
    RefusePredictorOverrides(job, evaluated->config(), job.out, "the model --eval evaluates", "");
  }
  ResolveCameras(job, from.get(), evaluated.get(), root);
  FrozenEncoder encoder = FrozenEncoder::Load(job.encoder, job.encoder_image_size);
  encoder.To(torch::Device(job.config.device));
  bool built = false;
  const std::vector<fs::path> cache_paths = EnsureCaches(job, encoder, group, &built);
  // A cache built just now read (and checksummed) every frame: the data need not read them again.
  const StageTwoData data(job.data, cache_paths, job.cameras, job.episodes, /*check_frames=*/!built);
  if (data.spec().name != job.embodiment) {
    throw AdaptError(job.data + " holds " + data.spec().name + " episodes, not " + job.embodiment + " (pass --data data/" + job.embodiment + ".h5)");
  }
  TrainStats stats;
  const bool trained = !job.eval_only;
  if (trained) {
    stats = TrainModel(job, data, from.get(), init_hash, encoder.hash(), launch, group);
    if (!root) return;  // rank 0 evaluates and writes
    std::fprintf(stderr, "adapt: best validation loss %.4f at step %d of %d%s, %.1f samples/s\n", stats.best_val, stats.best_step, stats.step,
                 stats.early_stopped ? " (early stop)" : "", stats.samples_per_s);
  }
  WorldModel model = evaluated ? std::move(*evaluated) : LoadWorldModel(job.out, &model_hash);  // trained: its cameras are job.cameras
  if (model_hash != data.encoder_hash()) {
    throw AdaptError(job.out + " was trained on the latents of encoder " + model_hash + "; " + job.encoder + " is " + data.encoder_hash());
  }
  EvaluateAndWrite(job, data, model, trained ? &stats : nullptr);
}

}  // namespace embody::adapt
