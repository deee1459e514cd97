#include "adapt/encoder/jepa.h"

#include "adapt/core/training.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>

namespace embody::adapt {
namespace {

using Clock = std::chrono::steady_clock;
namespace F = torch::nn::functional;

// Warm up for the first 10 % of steps, then cosine decay to a tenth.
double LearningRate(const JepaConfig& c, int step) { return WarmupCosine(c.lr, c.steps, step, 0.1); }

}  // namespace

nlohmann::json JepaConfig::ToJson() const { return *this; }

JepaConfig JepaConfig::FromJson(const nlohmann::json& j) {
  if (j.contains("mask_per_clip")) return j.get<JepaConfig>();
  nlohmann::json older = j;  // checkpoints from before the option drew one mask per batch
  older["mask_per_clip"] = false;
  return older.get<JepaConfig>();
}

std::vector<bool> SampleTubeMask(int frames, int grid, double ratio, std::mt19937_64* rng) {
  const int n = grid * grid;
  std::vector<bool> spatial(n, false);
  int hidden = 0;
  const int lo = std::max(1, grid / 4), hi = std::max(lo, grid / 2);
  while (hidden == 0 || hidden < ratio * n) {
    const int h = lo + static_cast<int>((*rng)() % (hi - lo + 1)), w = lo + static_cast<int>((*rng)() % (hi - lo + 1));
    const int r0 = static_cast<int>((*rng)() % (grid - h + 1)), c0 = static_cast<int>((*rng)() % (grid - w + 1));
    for (int r = r0; r < r0 + h; ++r) {
      for (int c = c0; c < c0 + w; ++c) {
        if (!spatial[r * grid + c]) {
          spatial[r * grid + c] = true;
          ++hidden;
        }
      }
    }
  }
  if (hidden == n) spatial[(*rng)() % n] = false;  // the context must see something
  std::vector<bool> mask(static_cast<size_t>(frames) * n);
  for (int t = 0; t < frames; ++t) {
    for (int i = 0; i < n; ++i) mask[t * n + i] = spatial[i];
  }
  return mask;
}

void EmaUpdate(torch::nn::Module& target, const torch::nn::Module& online, double momentum) {
  torch::NoGradGuard no_grad;
  const auto src = online.parameters();
  auto dst = target.parameters();
  TORCH_CHECK(src.size() == dst.size(), "EMA: modules differ");
  for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(momentum).add_(src[i], 1.0 - momentum);
}

PredictorImpl::PredictorImpl(int tokens, int dim, int depth, int heads) {
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, dim}));
  pos_embed = register_parameter("pos_embed", torch::randn({1, tokens, dim}) * 0.02);
  in = register_module("input_proj", torch::nn::Linear(dim, dim));  // not "in": a Python keyword breaks TorchScript loading
  for (int i = 0; i < depth; ++i) {
    layers.push_back(
        register_module("layer" + std::to_string(i),
                        torch::nn::TransformerEncoderLayer(
                            torch::nn::TransformerEncoderLayerOptions(dim, heads).dim_feedforward(2 * dim).dropout(0.0).activation(torch::kGELU))));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  out = register_module("output_proj", torch::nn::Linear(dim, dim));
}

torch::Tensor PredictorImpl::forward(const torch::Tensor& context, const torch::Tensor& mask) {
  auto x = in->forward(context);
  x = torch::where(mask.unsqueeze(2), mask_token.expand_as(x), x) + pos_embed;
  x = x.transpose(0, 1);  // (M, B, D): the C++ transformer layers are sequence-first
  for (auto& layer : layers) x = layer->forward(x);
  return out->forward(norm->forward(x.transpose(0, 1)));
}

Pretrainer::Pretrainer(const JepaConfig& config, const VideoData& data, const std::filesystem::path& out, bool resume)
    : config_(config), data_(data), out_(out), rng_(config.seed), device_(config.device) {
  if (config.encoder.head != "grid") throw AdaptError("the masked-latent JEPA needs a grid encoder (its masks hide grid cells)");
  if (data.image_size() != config.encoder.image_size) {
    throw AdaptError("the datasets have " + std::to_string(data.image_size()) + " px frames; the encoder is configured for " +
                     std::to_string(config.encoder.image_size));
  }
  torch::set_num_threads(config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(config.seed);
  online_ = ConvEncoder(config.encoder);
  target_ = ConvEncoder(config.encoder);
  online_->to(device_);
  target_->to(device_);
  EmaUpdate(*target_, *online_, 0.0);  // start equal
  const int tokens = config.clip_length * config.encoder.grid() * config.encoder.grid();
  predictor_ = Predictor(tokens, config.encoder.dim, config.predictor_depth, config.predictor_heads);
  predictor_->to(device_);
  std::vector<torch::Tensor> params = online_->parameters();
  for (const auto& p : predictor_->parameters()) params.push_back(p);
  optimizer_ = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(config.lr).weight_decay(config.weight_decay));
  for (auto& p : target_->parameters()) p.set_requires_grad(false);

  std::error_code ec;
  if (resume && std::filesystem::exists(out, ec)) {
    torch::serialize::InputArchive archive;
    archive.load_from(out.string(), device_);
    c10::IValue value;
    archive.read("config", value);
    RequireSameRunOptions(JepaConfig::FromJson(nlohmann::json::parse(value.toStringRef())).ToJson(), config.ToJson(), out);
    LoadTrainingState(archive, {{"online", online_.ptr().get()}, {"target", target_.ptr().get()}, {"predictor", predictor_.ptr().get()}}, *optimizer_,
                      &step_, &rng_);
  } else if (std::filesystem::exists(out, ec) && !resume) {
    throw AdaptError(out.string() + " already exists; pass --resume to continue training it or --overwrite");
  }
}

torch::Tensor Pretrainer::Batch(const std::string& split, std::mt19937_64* rng) const {
  const int s = config_.encoder.image_size, t = config_.clip_length;
  std::vector<std::uint8_t> bytes;
  bytes.reserve(static_cast<size_t>(config_.batch) * t * s * s * 3);
  for (int b = 0; b < config_.batch; ++b) {
    const auto clip = data_.RandomClip(split, t, config_.clip_stride, rng);
    bytes.insert(bytes.end(), clip.begin(), clip.end());
  }
  auto tensor = torch::from_blob(bytes.data(), {config_.batch, t, s, s, 3}, torch::kUInt8).to(device_, /*non_blocking=*/false, /*copy=*/true);
  return FramesToInput(tensor);
}

torch::Tensor Pretrainer::Loss(const torch::Tensor& clips, std::mt19937_64* rng, double* target_std) {
  const int t = config_.clip_length, g = config_.encoder.grid(), s = config_.encoder.image_size;
  const auto b = clips.size(0);
  // One tube mask per clip (V-JEPA samples them per clip), or one for the whole batch.
  std::vector<std::uint8_t> bytes;
  for (int64_t i = 0; i < (config_.mask_per_clip ? b : 1); ++i) {
    const auto flags = SampleTubeMask(t, g, config_.mask_ratio, rng);
    bytes.insert(bytes.end(), flags.begin(), flags.end());
  }
  const int64_t masks = static_cast<int64_t>(bytes.size()) / (t * g * g);
  const auto mask = torch::from_blob(bytes.data(), {masks, t * g * g}, torch::kUInt8).to(clips.device(), torch::kBool, false, /*copy=*/true);
  // Hide the masked blocks' pixels from the context encoder.
  const auto pixel_mask = mask.view({masks, t, 1, g, 1, g, 1}).expand({masks, t, 1, g, s / g, g, s / g}).reshape({masks, t, 1, s, s});
  const auto context_in = clips.masked_fill(pixel_mask, 0.5);
  torch::Tensor targets;
  {
    torch::NoGradGuard no_grad;
    targets = target_->forward(clips);
    *target_std = targets.reshape({-1, config_.encoder.dim}).std(0).mean().item<double>();
    targets = F::layer_norm(targets, F::LayerNormFuncOptions({config_.encoder.dim})).reshape({b, -1, config_.encoder.dim});
  }
  const auto context = online_->forward(context_in).reshape({b, -1, config_.encoder.dim});
  const auto per_clip = mask.expand({b, -1});
  const auto predicted = predictor_->forward(context, per_clip);
  // L1 over the masked tokens only.
  const auto weight = per_clip.unsqueeze(2).to(predicted.scalar_type());
  return ((predicted - targets).abs() * weight).sum() / (weight.sum() * config_.encoder.dim);
}

std::pair<double, double> Pretrainer::Step(const torch::Tensor& clips) {
  online_->train();
  predictor_->train();
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(LearningRate(config_, step_));
  }
  double target_std = 0;
  auto loss = Loss(clips, &rng_, &target_std);
  const double value = loss.item<double>();
  if (!std::isfinite(value)) throw AdaptError("loss is " + std::to_string(value) + " at step " + std::to_string(step_) + "; lower --lr");
  optimizer_->zero_grad();
  loss.backward();
  optimizer_->step();
  const double progress = static_cast<double>(step_) / std::max(1, config_.steps);
  EmaUpdate(*target_, *online_, config_.ema_start + (config_.ema_end - config_.ema_start) * progress);
  ++step_;
  // Collapse guard: every latent dimension constant across clips and tokens for many steps.
  collapsed_steps_ = target_std < 1e-3 ? collapsed_steps_ + 1 : 0;
  if (collapsed_steps_ >= 20) {
    throw AdaptError("representation collapsed at step " + std::to_string(step_) + ": per-dimension std of target latents " +
                     std::to_string(target_std) + " for 20 steps; try a higher --mask-ratio or lower --lr");
  }
  return {value, target_std};
}

double Pretrainer::Validate() {
  online_->eval();
  predictor_->eval();
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(config_.seed + 1);  // the same clips and masks every time
  double total = 0, target_std = 0;
  const int batches = 4;
  for (int i = 0; i < batches; ++i) total += Loss(Batch("valid", &rng), &rng, &target_std).item<double>();
  return total / batches;
}

void Pretrainer::Save() const {
  SaveTrainingCheckpoint(out_, "embody-jepa-v1", config_.ToJson(),
                         {{"online", online_.ptr().get()}, {"target", target_.ptr().get()}, {"predictor", predictor_.ptr().get()}}, *optimizer_,
                         step_, rng_);
}

PretrainStats Pretrainer::Train(bool verbose) {
  PretrainStats stats;
  const auto start = Clock::now();
  const int first = step_;
  double loss_sum = 0;
  int loss_count = 0;
  while (step_ < config_.steps) {
    const auto [loss, target_std] = Step(Batch("train", &rng_));
    loss_sum += loss;
    ++loss_count;
    stats.step = step_;
    stats.target_std = target_std;
    stats.clips_per_s = (step_ - first) * config_.batch / std::max(1e-9, SecondsSince(start));
    if (step_ % config_.log_every == 0 || step_ == config_.steps) {
      stats.loss = loss_sum / loss_count;
      loss_sum = 0;
      loss_count = 0;
      if (verbose) {
        const double eta = (config_.steps - step_) * config_.batch / std::max(1e-9, stats.clips_per_s);
        std::fprintf(stderr, "pretrain: step %d/%d  loss %.4f  target std %.3f  %.1f clips/s  ETA %.0fs\n", step_, config_.steps, stats.loss,
                     target_std, stats.clips_per_s, eta);
      }
    }
    if (step_ % config_.eval_every == 0 || step_ == config_.steps) {
      stats.val_loss = Validate();
      if (verbose) std::fprintf(stderr, "pretrain: step %d  validation loss %.4f  (checkpoint %s)\n", step_, stats.val_loss, out_.c_str());
      Save();
    }
  }
  return stats;
}

namespace {

// Probes see the tokens averaged to a 4x4 grid per frame: 2x2 pooling lost the small end effector
// among background tokens (R^2 ~0.0-0.2 in a first measurement), the full 8x8 grid overfit.
constexpr int kProbeGrid = 4;
// Target columns of a ProbeSet, three each: ee and first object in the world frame, in the camera
// frame, in the image plane.
constexpr int kProbeColumns = 18;

// Camera-frame positions (n, 3) -> image-plane coordinates (u / W, v / H, depth) through the
// pinhole intrinsics [fx 0 cx; 0 fy cy; 0 0 1] (OpenGL camera: looking along -z, y up; v grows down).
// Points behind the camera or far outside the image (an object knocked off the table) would blow up
// u and v and with them R^2 (-423 once): depth is clamped to >= 5 cm and u, v to 1.5 image widths.
// `in_view` (optional): whether the point projects into the image, in front of the camera.
torch::Tensor ToImagePlane(const torch::Tensor& camera, const std::vector<double>& k, int size, torch::Tensor* in_view = nullptr) {
  const auto depth = (-camera.select(1, 2)).clamp_min(0.05);
  const auto u = (k[0] * camera.select(1, 0) / depth + k[2]) / size, v = (k[5] - k[4] * camera.select(1, 1) / depth) / size;
  if (in_view) *in_view = (-camera.select(1, 2) > 0.05) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1);
  return torch::stack({u.clamp(-0.5, 1.5), v.clamp(-0.5, 1.5), depth}, 1);
}

// Tokens (n, 1, N, D) of single frames -> the probes' features: averaged to a 4x4 grid, (n, 16 D).
torch::Tensor PoolTokens(const torch::Tensor& tokens) {
  const auto n = tokens.size(0), d = tokens.size(3);
  if (tokens.size(2) == 1) return tokens.reshape({n, d});  // one vector per frame: the probe sees it whole
  const int g = static_cast<int>(std::lround(std::sqrt(static_cast<double>(tokens.size(2)))));
  const auto grid = tokens.reshape({n, g, g, d}).permute({0, 3, 1, 2});
  return F::adaptive_avg_pool2d(grid, F::AdaptiveAvgPool2dFuncOptions({kProbeGrid, kProbeGrid})).reshape({n, -1});
}

// Every token (n, N, D) of uint8 frames (n, H, W, 3), encoded in chunks: the attentive probe's input.
torch::Tensor TokenFeatures(FrozenEncoder& encoder, const torch::Tensor& frames) {
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < frames.size(0); i += 64) {
    const auto chunk = frames.slice(0, i, std::min<int64_t>(frames.size(0), i + 64));
    out.push_back(encoder.Encode(FramesToInput(chunk.unsqueeze(1))).squeeze(1));
  }
  return torch::cat(out);
}

// Pooled latents (n, 16 D) of uint8 frames: the ridge probe's input.
torch::Tensor PooledFeatures(FrozenEncoder& encoder, const torch::Tensor& frames) {
  return PoolTokens(TokenFeatures(encoder, frames).unsqueeze(1)).to(torch::kFloat64);
}

// Per-column R^2 of predictions (NaN without rows: nothing was scored).
torch::Tensor R2(const torch::Tensor& truth, const torch::Tensor& prediction) {
  if (truth.size(0) == 0) return torch::full({truth.size(1)}, std::nan(""), truth.options());
  const auto sse = (truth - prediction).pow(2).sum(0), sst = (truth - truth.mean(0)).pow(2).sum(0).clamp_min(1e-12);
  return 1 - sse / sst;
}

// Mean and per-axis R^2 of one three-column target.
ProbeScore ScoreOf(const torch::Tensor& axes_r2) {
  ProbeScore s;
  for (int i = 0; i < 3; ++i) s.axes[i] = axes_r2[i].item<double>();
  s.r2 = (s.axes[0] + s.axes[1] + s.axes[2]) / 3;
  return s;
}

const std::vector<double> kRidgeStrengths = {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0};

// Ridge regression of every column of y on x, scored on (xt, yt) for each strength in
// kRidgeStrengths: per-column R^2, one row per strength. The Gram matrix is diagonalized once, so a
// strength costs a matrix product, not a solve.
torch::Tensor RidgeR2(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& xt, const torch::Tensor& yt) {
  const auto mean = x.mean(0), std = x.std(0).clamp_min(1e-8);
  const auto xs = (x - mean) / std, xts = (xt - mean) / std;
  const auto ymean = y.mean(0);
  // prediction(lambda) = p diag(1 / (eigenvalues + lambda n)) b + ymean
  torch::Tensor eigenvalues, q, p, b;
  if (x.size(1) <= x.size(0)) {  // primal: w = (X'X + lambda n I)^-1 X'y
    std::tie(eigenvalues, q) = torch::linalg_eigh(xs.t().mm(xs), "L");
    p = xts.mm(q);
    b = q.t().mm(xs.t().mm(y - ymean));
  } else {  // dual, for more features than samples: w = X'(XX' + lambda n I)^-1 y
    std::tie(eigenvalues, q) = torch::linalg_eigh(xs.mm(xs.t()), "L");
    p = xts.mm(xs.t()).mm(q);
    b = q.t().mm(y - ymean);
  }
  std::vector<torch::Tensor> rows;
  for (double lambda : kRidgeStrengths) {
    const auto scale = 1.0 / (eigenvalues.clamp_min(0) + lambda * x.size(0));
    rows.push_back(R2(yt, p.mm(scale.unsqueeze(1) * b) + ymean));
  }
  return torch::stack(rows);
}

// Chooses the ridge strength of each probed point (three columns) on every fifth training episode
// (fit on the rest), then fits all training episodes and scores (xt, yt): per-column R^2. Episodes,
// not frames, are held out: frames of one episode share a camera.
torch::Tensor RidgeProbe(const std::vector<torch::Tensor>& xs, const std::vector<torch::Tensor>& ys, const torch::Tensor& xt,
                         const torch::Tensor& yt) {
  const int64_t strengths = static_cast<int64_t>(kRidgeStrengths.size()), points = yt.size(1) / 3;
  std::vector<torch::Tensor> fit_x, fit_y, hold_x, hold_y;
  for (size_t i = 0; i < xs.size(); ++i) {
    (i % 5 == 4 ? hold_x : fit_x).push_back(xs[i]);
    (i % 5 == 4 ? hold_y : fit_y).push_back(ys[i]);
  }
  auto best = torch::full({points}, 2, torch::kLong);  // 1e-2 when there is nothing to choose on
  if (!hold_x.empty() && !fit_x.empty()) {
    const auto held = RidgeR2(torch::cat(fit_x), torch::cat(fit_y), torch::cat(hold_x), torch::cat(hold_y));
    best = held.reshape({strengths, points, 3}).mean(2).argmax(0);
  }
  const auto scored = RidgeR2(torch::cat(xs), torch::cat(ys), xt, yt).reshape({strengths, points, 3});
  return scored.gather(0, best.view({1, points, 1}).expand({1, points, 3})).reshape({-1});
}

// The object's target columns (world frame, camera frame, image plane). Its probes fit and score only
// the frames where it is in view: a cup knocked off the table and out of the image is 4 % of the demo's
// frames but a third to a half of the variance of its image-plane position, which no encoder can read
// from a frame that does not show it. The ee's columns (the same three frames) count every frame.
torch::Tensor ObjectColumns() { return torch::tensor(std::vector<int64_t>{3, 4, 5, 9, 10, 11, 15, 16, 17}); }
torch::Tensor EeColumns() { return torch::tensor(std::vector<int64_t>{0, 1, 2, 6, 7, 8, 12, 13, 14}); }

torch::Tensor InViewRows(const torch::Tensor& in_view) { return in_view.nonzero().squeeze(1); }

// The 18 per-column R^2 from the ee's and the object's nine each.
torch::Tensor Merged(const torch::Tensor& ee, const torch::Tensor& object) {
  auto r2 = torch::empty({kProbeColumns}, ee.options());
  r2.index_copy_(0, EeColumns(), ee);
  r2.index_copy_(0, ObjectColumns(), object);
  return r2;
}

// Per-column R^2 of predictions of a probe set's targets, the object's columns on its in-view rows.
torch::Tensor ProbeR2(const torch::Tensor& truth, const torch::Tensor& prediction, const torch::Tensor& object_in_view) {
  const auto rows = InViewRows(object_in_view), ee = EeColumns(), object = ObjectColumns();
  return Merged(R2(truth.index_select(1, ee), prediction.index_select(1, ee)),
                R2(truth.index_select(0, rows).index_select(1, object), prediction.index_select(0, rows).index_select(1, object)));
}

ProbeResult ResultOf(const torch::Tensor& r2, const ProbeSet& train, const ProbeSet& test) {
  ProbeResult r;
  ProbeScore* scores[6] = {&r.ee_world, &r.object_world, &r.ee, &r.object, &r.ee_image, &r.object_image};
  for (int i = 0; i < 6; ++i) *scores[i] = ScoreOf(r2.slice(0, 3 * i, 3 * i + 3));
  r.train_frames = train.size();
  r.test_frames = test.size();
  r.object_out_of_view = test.size() - torch::cat(test.object_in_view).sum().item<int64_t>();
  return r;
}

}  // namespace

int64_t ProbeSet::size() const {
  int64_t n = 0;
  for (const auto& f : frames) n += f.size(0);
  return n;
}

ProbeSet LoadProbeSet(const VideoData& data, const std::string& split, int max_episodes, int frame_stride) {
  const auto& episodes = data.episodes(split);
  if (episodes.empty()) throw AdaptError("probes need " + split + " episodes: the datasets' /mask/" + split + " is empty");
  const int s = data.image_size();
  ProbeSet set;
  for (size_t e = 0; e < episodes.size() && static_cast<int>(e) < max_episodes; ++e) {
    const EpisodeRef& ep = episodes[e];
    const auto rows = torch::arange(0, ep.frames, frame_stride);
    auto frames = data.Frames(ep, 0, ep.frames);
    set.frames.push_back(torch::from_blob(frames.data(), {ep.frames, s, s, 3}, torch::kUInt8).index_select(0, rows));
    // Positions in the world frame (the robot's, which every frame shows) and in the episode
    // camera's frame (cameras are randomized per episode; their depth axis is ambiguous in one image
    // when distance and field of view both vary).
    const collect::Dataset& ds = data.dataset(ep.dataset);
    // Camera-to-world at every frame (a camera on the hand moves; an agent view's pose repeats).
    auto pose = ds.CameraPoses(ep.demo, data.camera());
    const auto poses = torch::from_blob(pose.data(), {ep.frames, 4, 4}, torch::kFloat64).index_select(0, rows);
    const auto rotation = poses.slice(1, 0, 3).slice(2, 0, 3).clone(), position = poses.slice(1, 0, 3).select(2, 3).clone();
    auto to_camera = [&](const torch::Tensor& world) { return (world - position).unsqueeze(1).bmm(rotation).squeeze(1); };
    auto eef = ds.Read<float>(ep.demo, collect::keys::kEefPos);
    std::vector<hsize_t> dims;
    auto obj = ds.Read<float>(ep.demo, collect::keys::kObject, &dims);
    const auto ee_world = torch::from_blob(eef.data(), {ep.frames, 3}, torch::kFloat32).index_select(0, rows).to(torch::kFloat64);
    const auto object_world = torch::from_blob(obj.data(), {ep.frames, static_cast<long>(dims[1])}, torch::kFloat32)
                                  .index_select(0, rows)
                                  .slice(1, 0, 3)
                                  .to(torch::kFloat64);
    const auto ee = to_camera(ee_world), object = to_camera(object_world);
    const auto k = ds.Read<double>(ep.demo, collect::keys::Intrinsics(data.camera()));
    torch::Tensor in_view;
    const auto object_image = ToImagePlane(object, k, s, &in_view);
    set.targets.push_back(torch::cat({ee_world, object_world, ee, object, ToImagePlane(ee, k, s), object_image}, 1));
    set.object_in_view.push_back(in_view);
  }
  return set;
}

namespace {

// A probe: per-episode features and targets, test features and targets -> per-column R^2; `part`
// 0 for the ee's probe, 1 for the object's.
using ProbeFit = std::function<torch::Tensor(const std::vector<torch::Tensor>& xs, const std::vector<torch::Tensor>& ys, const torch::Tensor& xt,
                                             const torch::Tensor& yt, int part)>;

// Fits and scores `fit` on features of a probe set's episodes: the ee's probe on every frame, the
// object's on the frames where it is in view.
ProbeResult ProbeWith(const std::vector<torch::Tensor>& xs, const std::vector<torch::Tensor>& xt, const ProbeSet& train, const ProbeSet& test,
                      const ProbeFit& fit) {
  const auto x_test = torch::cat(xt), y_test = torch::cat(test.targets);
  const auto ee = EeColumns(), object = ObjectColumns(), rows = InViewRows(torch::cat(test.object_in_view));
  std::vector<torch::Tensor> ys_ee, xs_in, ys_in;
  for (size_t e = 0; e < xs.size(); ++e) {
    const auto in_view = InViewRows(train.object_in_view[e]);
    ys_ee.push_back(train.targets[e].index_select(1, ee));
    xs_in.push_back(xs[e].index_select(0, in_view));
    ys_in.push_back(train.targets[e].index_select(0, in_view).index_select(1, object));
  }
  return ResultOf(Merged(fit(xs, ys_ee, x_test, y_test.index_select(1, ee), 0),
                         fit(xs_in, ys_in, x_test.index_select(0, rows), y_test.index_select(0, rows).index_select(1, object), 1)),
                  train, test);
}

}  // namespace

ProbeResult EvaluateProbes(FrozenEncoder& encoder, const ProbeSet& train, const ProbeSet& test) {
  std::vector<torch::Tensor> xs, xt;
  for (const auto& f : train.frames) xs.push_back(PooledFeatures(encoder, f));
  for (const auto& f : test.frames) xt.push_back(PooledFeatures(encoder, f));
  return ProbeWith(xs, xt, train, test,
                   [](const auto& x, const auto& y, const auto& x_test, const auto& y_test, int) { return RidgeProbe(x, y, x_test, y_test); });
}

AttentiveProbeImpl::AttentiveProbeImpl(int tokens, int dim, int outputs, int width) {
  in = register_module("in", torch::nn::Linear(dim, width));
  position = register_parameter("position", torch::randn({tokens, width}) * 0.02);
  query = register_parameter("query", torch::randn({1, 1, width}) * 0.02);
  attention = register_module("attention", torch::nn::MultiheadAttention(torch::nn::MultiheadAttentionOptions(width, 4)));
  head = register_module("head", torch::nn::Sequential(torch::nn::Linear(width, 256), torch::nn::GELU(), torch::nn::Linear(256, outputs)));
}

torch::Tensor AttentiveProbeImpl::forward(const torch::Tensor& tokens) {
  const auto x = (in->forward(tokens) + position).transpose(0, 1);  // (N, n, W): sequence first
  const auto q = query.expand({1, tokens.size(0), query.size(2)});
  const auto attended = std::get<0>(attention->forward(q, x, x)).squeeze(0);  // (n, W)
  return head->forward(attended);
}

torch::Tensor AttentiveProbeR2(const std::vector<torch::Tensor>& xs, const std::vector<torch::Tensor>& ys, const torch::Tensor& xt,
                               const torch::Tensor& yt, std::uint64_t seed, int epochs) {
  std::vector<torch::Tensor> fit_x, fit_y, hold_x, hold_y;
  for (size_t i = 0; i < xs.size(); ++i) {
    (i % 5 == 4 && xs.size() >= 5 ? hold_x : fit_x).push_back(xs[i]);
    (i % 5 == 4 && xs.size() >= 5 ? hold_y : fit_y).push_back(ys[i]);
  }
  const auto x = torch::cat(fit_x).to(torch::kFloat32), y = torch::cat(fit_y).to(torch::kFloat32);
  // Standardized per token dimension and per target column, on the fitting rows.
  const std::vector<int64_t> token_dims = {0, 1};
  const torch::Tensor x_mean = x.mean(token_dims);
  const torch::Tensor x_std = x.std(token_dims, /*unbiased=*/false, /*keepdim=*/false).clamp_min(1e-6);
  const auto y_mean = y.mean(0), y_std = y.std(0, /*unbiased=*/false).clamp_min(1e-6);
  auto in = [&](const torch::Tensor& t) { return (t.to(torch::kFloat32) - x_mean) / x_std; };
  const auto xf = in(x), yf = (y - y_mean) / y_std;
  const auto xh = hold_x.empty() ? xf : in(torch::cat(hold_x)), yh = hold_x.empty() ? yf : (torch::cat(hold_y).to(torch::kFloat32) - y_mean) / y_std;
  torch::manual_seed(seed);
  AttentiveProbe probe(static_cast<int>(x.size(1)), static_cast<int>(x.size(2)), static_cast<int>(y.size(1)));
  torch::optim::Adam opt(probe->parameters(), torch::optim::AdamOptions(2e-3).weight_decay(1e-4));
  std::mt19937_64 rng(seed);
  const int64_t n = xf.size(0), batch = 64;
  double best = std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> best_state;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const auto perm = torch::tensor(order);
    probe->train();
    for (int64_t i = 0; i < n; i += batch) {
      const auto rows = perm.slice(0, i, std::min(n, i + batch));
      const auto loss = (probe->forward(xf.index_select(0, rows)) - yf.index_select(0, rows)).pow(2).mean();
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    torch::NoGradGuard no_grad;
    probe->eval();
    const double held = (probe->forward(xh) - yh).pow(2).mean().item<double>();
    if (held < best) {
      best = held;
      best_state.clear();
      for (const auto& p : probe->parameters()) best_state.push_back(p.detach().clone());
    }
  }
  torch::NoGradGuard no_grad;
  const auto params = probe->parameters();
  for (size_t i = 0; i < best_state.size(); ++i) params[i].copy_(best_state[i]);  // none: no epoch, or no finite held-out loss
  probe->eval();
  const auto prediction = probe->forward(in(xt)) * y_std + y_mean;
  return R2(yt.to(torch::kFloat64), prediction.to(torch::kFloat64));
}

ProbeResult EvaluateAttentiveProbes(FrozenEncoder& encoder, const ProbeSet& train, const ProbeSet& test, std::uint64_t seed) {
  std::vector<torch::Tensor> xs, xt;
  for (const auto& f : train.frames) xs.push_back(TokenFeatures(encoder, f));
  for (const auto& f : test.frames) xt.push_back(TokenFeatures(encoder, f));
  return ProbeWith(xs, xt, train, test, [seed](const auto& x, const auto& y, const auto& x_test, const auto& y_test, int part) {
    return AttentiveProbeR2(x, y, x_test, y_test, seed + part);
  });
}

ProbeResult EvaluateProbes(FrozenEncoder& encoder, const VideoData& data, int max_episodes, int frame_stride) {
  return EvaluateProbes(encoder, LoadProbeSet(data, "train", max_episodes, frame_stride), LoadProbeSet(data, "valid", max_episodes, frame_stride));
}

ProbeResult SupervisedCeiling(const EncoderConfig& config, const ProbeSet& train, const ProbeSet& test, int epochs, std::uint64_t seed) {
  torch::manual_seed(seed);
  ConvEncoder encoder(config);
  torch::nn::Linear head(config.tokens() == 1 ? config.dim : kProbeGrid * kProbeGrid * config.dim, kProbeColumns);
  std::vector<torch::Tensor> params = encoder->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
  const auto x = torch::cat(train.frames), y = torch::cat(train.targets).to(DefaultFloat());
  // Weight 0 on the object's columns where it is out of view (its statistics without those rows).
  auto weight = torch::ones_like(y);
  const auto object = ObjectColumns();
  weight.index_copy_(1, object, torch::cat(train.object_in_view).to(y.dtype()).unsqueeze(1).expand({-1, object.numel()}).contiguous());
  const auto count = weight.sum(0).clamp_min(1), mean = (y * weight).sum(0) / count;
  const auto std = ((y - mean).pow(2) * weight).sum(0).div(count).sqrt().clamp_min(1e-6);
  const auto y_norm = (y - mean) / std;
  auto predict = [&](const torch::Tensor& frames) { return head->forward(PoolTokens(encoder->forward(FramesToInput(frames.unsqueeze(1))))); };
  const int64_t batch = 64;
  encoder->train();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const auto order = torch::randperm(x.size(0));
    for (int64_t i = 0; i < x.size(0); i += batch) {
      const auto index = order.slice(0, i, std::min(x.size(0), i + batch));
      const auto loss = ((predict(x.index_select(0, index)) - y_norm.index_select(0, index)).pow(2) * weight.index_select(0, index)).mean();
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
  }
  encoder->eval();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> predictions;
  const auto xt = torch::cat(test.frames);
  for (int64_t i = 0; i < xt.size(0); i += batch) predictions.push_back(predict(xt.slice(0, i, std::min(xt.size(0), i + batch))));
  const auto prediction = torch::cat(predictions).to(torch::kFloat64) * std.to(torch::kFloat64) + mean.to(torch::kFloat64);
  return ResultOf(ProbeR2(torch::cat(test.targets), prediction, torch::cat(test.object_in_view)), train, test);
}

}  // namespace embody::adapt
