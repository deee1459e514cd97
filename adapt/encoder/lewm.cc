#include "adapt/encoder/lewm.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <sstream>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>

#include "adapt/core/training.h"
#include "collect/hdf5_util.h"

namespace embody::adapt {
namespace {

using Clock = std::chrono::steady_clock;

// Warm up for the first 5 % of steps, then cosine decay to a tenth.
double LearningRate(const LewmConfig& c, int step) { return WarmupCosine(c.lr, c.steps, step, 0.05); }

void CheckReconTarget(const std::string& kind) {
  if (kind != "rgb" && kind != "highpass") throw AdaptError("unknown pixel-term target '" + kind + "' (rgb or highpass)");
}

}  // namespace

torch::Tensor ReconTarget(const torch::Tensor& frames, const std::string& kind) {
  CheckReconTarget(kind);
  if (kind == "rgb") return frames;
  namespace F = torch::nn::functional;
  const auto padded = F::pad(frames, F::PadFuncOptions({2, 2, 2, 2}).mode(torch::kReplicate));
  const auto local_mean = F::avg_pool2d(padded, F::AvgPool2dFuncOptions(5).stride(1));
  return (0.5 + 2 * (frames - local_mean)).clamp(0, 1);
}

nlohmann::json LewmConfig::ToJson() const { return *this; }
LewmConfig LewmConfig::FromJson(const nlohmann::json& j) {
  // A checkpoint from before the between-scene term was trained without it.
  nlohmann::json full = {{"scene_weight", 0.0},     {"scene_temperature", 0.1}, {"scene_shift", 4},    {"scene_queue", 0},     {"scene_camera", ""},
                         {"scene_any_time", false}, {"scene_groups", false},    {"recon_weight", 0.0}, {"recon_target", "rgb"}};
  full.update(j);
  return full.get<LewmConfig>();
}

torch::Tensor SigReg(const torch::Tensor& z, int projections, torch::Generator* generator, const DataParallel* group) {
  const auto n = z.size(0) * (group ? group->world_size() : 1), d = z.size(1);
  auto directions = generator ? torch::randn({d, projections}, *generator) : torch::randn({d, projections});
  directions = directions / directions.norm(2, 0, true);
  const auto h = z.mm(directions.to(z.device(), z.scalar_type()));  // (n, M)
  // Evaluation points t in [0, 3] (the statistic is even in t); trapezoid weights.
  constexpr int kKnots = 17;
  const auto t = torch::linspace(0, 3, kKnots, z.options());
  auto weights = torch::full({kKnots}, 3.0 / (kKnots - 1), z.options());
  weights[0] = weights[0] / 2;
  weights[kKnots - 1] = weights[kKnots - 1] / 2;
  const auto normal_cf = torch::exp(-0.5 * t * t);
  const auto th = h.unsqueeze(2) * t;  // (n, M, K)
  auto real = torch::cos(th).mean(0), imaginary = torch::sin(th).mean(0);
  if (group) {  // the global batch's values; the gradient flows through this rank's share
    const auto global = group->Mean(torch::stack({real, imaginary}));
    real = real + (global[0] - real).detach();
    imaginary = imaginary + (global[1] - imaginary).detach();
  }
  const auto error = (real - normal_cf).pow(2) + imaginary.pow(2);  // (M, K)
  return (error * normal_cf * weights).sum(1).mean() * static_cast<double>(n);
}

SceneQueueImpl::SceneQueueImpl(int size, int dim) {
  entries = register_buffer("entries", torch::zeros({std::max(1, size), dim}));
  episodes = register_buffer("episodes", torch::full({std::max(1, size)}, -1, torch::kLong));
  filled = register_buffer("filled", torch::zeros({}, torch::kLong));
}

void SceneQueueImpl::Push(const torch::Tensor& projections, const torch::Tensor& ids) {
  const auto n = std::min(projections.size(0), entries.size(0));
  torch::NoGradGuard no_grad;
  entries.copy_(torch::cat({entries.slice(0, n), projections.slice(0, 0, n).to(entries.device(), entries.scalar_type())}));
  episodes.copy_(torch::cat({episodes.slice(0, n), ids.slice(0, 0, n).to(episodes.device())}));
  filled.fill_(std::min<int64_t>(entries.size(0), filled.item<int64_t>() + n));
}

StepPredictorImpl::StepPredictorImpl(int dim, int condition_dim, int width) {
  namespace nn = torch::nn;
  net = register_module("net", nn::Sequential(nn::Linear(2 * dim + condition_dim, width), nn::LayerNorm(nn::LayerNormOptions({width})), nn::GELU(),
                                              nn::Linear(width, width), nn::GELU(), nn::Linear(width, dim)));
}

GridStepPredictorImpl::GridStepPredictorImpl(int dim, int condition_dim, int width, int grid_side) : grid(grid_side) {
  namespace nn = torch::nn;
  // No normalization over the grid (it would let every token see every other): each token's
  // prediction depends on its 5x5 neighbourhood and the conditioning alone.
  net = register_module(
      "net", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(2 * dim + condition_dim, width, 3).padding(1)), nn::GELU(),
                            nn::Conv2d(nn::Conv2dOptions(width, width, 3).padding(1)), nn::GELU(), nn::Conv2d(nn::Conv2dOptions(width, dim, 1))));
}

torch::Tensor GridStepPredictorImpl::forward(const torch::Tensor& z, const torch::Tensor& z_prev, const torch::Tensor& condition) {
  const auto b = z.size(0), n = z.size(1), d = z.size(2);
  auto map = [&](const torch::Tensor& tokens) { return tokens.transpose(1, 2).reshape({b, d, grid, grid}); };
  const auto c = condition.reshape({b, -1, 1, 1}).expand({b, condition.size(-1), grid, grid});
  const auto change = net->forward(torch::cat({map(z), map(z - z_prev), c}, 1));  // (B, D, g, g)
  return z + change.reshape({b, d, n}).transpose(1, 2);
}

PatchDecoderImpl::PatchDecoderImpl(int dim, int patch_side) : patch(patch_side) {
  net = register_module("net", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, 3 * patch_side * patch_side, 1)));
}

torch::Tensor PatchDecoderImpl::forward(const torch::Tensor& tokens) {
  const auto b = tokens.size(0), n = tokens.size(1), d = tokens.size(2);
  const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
  const auto map = tokens.transpose(1, 2).reshape({b, d, g, g});
  return torch::sigmoid(torch::pixel_shuffle(net->forward(map), patch));  // (B, 3, g * patch, g * patch)
}

torch::Tensor StepPredictorImpl::forward(const torch::Tensor& z, const torch::Tensor& z_prev, const torch::Tensor& condition) {
  return z + net->forward(torch::cat({z, z - z_prev, condition}, -1));
}

LewmTrainer::LewmTrainer(const LewmConfig& config, const VideoData& data, const std::filesystem::path& out, bool resume, const DataParallel* group)
    : config_(config), data_(data), out_(out), rng_(config.seed), group_(group), device_(config.device) {
  ShareOf(group, config.batch);  // refuses a batch the ranks cannot split evenly
  if (config.encoder.head != "vector" && config.encoder.head != "grid") throw AdaptError("the LeWM recipe's latent is a vector or a grid");
  if (config.encoder.head == "grid") {  // the dense next-embedding loss and SIGReg over tokens: the vector head's extra terms do not apply
    if (config.contrast_weight > 0) {
      throw AdaptError(
          "--contrast-weight is a term of the vector latent; the grid's loss is the next embedding of every token, SIGReg, the per-token "
          "pixel term and the per-token between-layout term (--scene-weight with --scene-groups)");
    }
    // The grid's between-scene term is per token and between the layouts of one scene: it needs the
    // groups, and the vector term's altered views, queue and other camera do not apply.
    if (config.scene_weight > 0 && !config.scene_groups) {
      throw AdaptError("--scene-weight with the grid is the per-token term between the layouts of one scene: it needs --scene-groups");
    }
    const char* vector_only = config.scene_queue > 0         ? "--scene-queue"
                              : !config.scene_camera.empty() ? "--scene-camera"
                              : config.scene_any_time        ? "--scene-any-time"
                                                             : nullptr;
    if (vector_only) throw AdaptError(std::string(vector_only) + " is an option of the vector latent's between-scene term");
  }
  if (config.frame_skip < 1 || config.rollout < 1) throw AdaptError("--frame-skip and --rollout must be >= 1");
  CheckReconTarget(config.recon_target);
  if (config.recon_target != "rgb" && config.recon_weight <= 0) throw AdaptError("--recon-target needs the pixel term (--recon-weight > 0)");
  // Every option of the between-scene term needs the term.
  const char* scene_option = config.scene_groups            ? "--scene-groups"
                             : config.scene_any_time        ? "--scene-any-time"
                             : !config.scene_camera.empty() ? "--scene-camera"
                                                            : nullptr;
  if (scene_option && config.scene_weight <= 0) throw AdaptError(std::string(scene_option) + " needs the between-scene term (--scene-weight > 0)");
  if (config.scene_groups && !data.HasSceneGroups()) {
    throw AdaptError(
        "--scene-groups needs episodes that share a scene: collect with simcollect --layouts-per-scene 2 (no episode here has a scene_group)");
  }
  if (config.scene_groups) scene_group_size_ = std::min(data.SceneGroupSize(), config.batch);
  if (config.encoder.head == "grid" && config.scene_weight > 0) {  // computed on each rank's clips: its share must hold whole groups
    const auto [first, end] = ShareOf(group, config.batch);
    if (scene_group_size_ < 2 || first % scene_group_size_ != 0 || (end - first) % scene_group_size_ != 0) {
      throw AdaptError("the per-token between-layout term needs batches (per rank) of whole scene groups of 2 or more: --batch " +
                       std::to_string(config.batch) + " with groups of " + std::to_string(scene_group_size_));
    }
  }
  if (!config.scene_camera.empty()) {
    if (config.scene_camera == data.camera()) throw AdaptError("--scene-camera must be another camera than the anchors' " + data.camera());
    data.RequireCamera(config.scene_camera);
  }
  if (data.image_size() != config.encoder.image_size) {
    throw AdaptError("the datasets have " + std::to_string(data.image_size()) + " px frames; the encoder is configured for " +
                     std::to_string(config.encoder.image_size));
  }
  const std::int64_t span = static_cast<std::int64_t>(config.clip_length() - 1) * config.frame_skip + 1;
  for (const std::string split : {"train", "valid"}) {
    for (const auto& ep : data.episodes(split)) {
      if (ep.frames < span) {
        throw AdaptError(ep.demo + " has " + std::to_string(ep.frames) + " frames; a clip of " + std::to_string(config.clip_length()) +
                         " model steps of " + std::to_string(config.frame_skip) + " needs " + std::to_string(span));
      }
    }
  }
  // Conditioning: the model step's actions, padded to the widest action space, and the dataset.
  for (int i = 0; i < data.num_datasets(); ++i) {
    if (data.dataset(i).meta().empty())
      throw AdaptError("dataset " + std::to_string(i + 1) + " has no embody_meta attribute (not a simcollect dataset?)");
    action_dim_ = std::max(action_dim_, static_cast<int>(data.dataset(i).metadata().action_names.size()));
  }
  condition_dim_ = action_dim_ * config.frame_skip + data.num_datasets();
  if (!group) torch::set_num_threads(config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(config.seed);
  encoder_ = ConvEncoder(config.encoder);
  encoder_->group = group;
  if (config.encoder.head == "grid") {
    grid_predictor_ = GridStepPredictor(config.encoder.dim, condition_dim_, config.predictor_width, config.encoder.grid());
    grid_predictor_->to(device_);
  } else {
    predictor_ = StepPredictor(config.encoder.dim, condition_dim_, config.predictor_width);
    predictor_->to(device_);
  }
  scene_head_ = torch::nn::Sequential(torch::nn::Linear(config.encoder.dim, 256), torch::nn::GELU(), torch::nn::Linear(256, 64));
  encoder_->to(device_);
  scene_queue_ = SceneQueue(config.scene_queue, 64);
  scene_head_->to(device_);
  scene_queue_->to(device_);
  if (config.recon_weight > 0 && config.encoder.head == "grid") {  // built only when used: it draws from torch's generator
    const int patch = config.encoder.image_size / config.encoder.grid();
    recon_decoder_ = PatchDecoder(config.encoder.dim, patch).ptr();
  } else if (config.recon_weight > 0) {
    recon_decoder_ = LatentDecoder(1, config.encoder.dim, config.encoder.image_size).ptr();
  }
  if (recon_decoder_) recon_decoder_->to(device_);
  std::vector<torch::Tensor> params = encoder_->parameters();
  for (const auto& p : Predictor().parameters()) params.push_back(p);
  if (config.scene_weight > 0) {
    for (const auto& p : scene_head_->parameters()) params.push_back(p);
  }
  if (config.recon_weight > 0) {
    for (const auto& p : recon_decoder_->parameters()) params.push_back(p);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(config.lr).weight_decay(config.weight_decay));

  std::error_code ec;
  if (resume && std::filesystem::exists(out, ec)) {
    torch::serialize::InputArchive archive;
    archive.load_from(out.string(), device_);
    c10::IValue value;
    if (!archive.try_read("embody_format", value) || value.toStringRef() != "embody-lewm-v1") {
      throw AdaptError(out.string() + " is not a LeWM checkpoint; resume it with the recipe that wrote it");
    }
    archive.read("config", value);
    RequireSameRunOptions(LewmConfig::FromJson(nlohmann::json::parse(value.toStringRef())).ToJson(), config.ToJson(), out);
    LoadTrainingState(archive, Modules(), *optimizer_, &step_, &rng_);
  } else if (resume) {
    throw AdaptError("nothing to resume: no " + out.string());
  } else if (std::filesystem::exists(out, ec)) {
    throw AdaptError(out.string() + " exists; pass --resume to continue training it or --overwrite");
  }
  if (group) {  // every rank starts from rank 0's parameters (seeded alike anyway) and its normalizer statistics
    std::vector<torch::Tensor> state = params;
    for (const auto& b : encoder_->buffers()) state.push_back(b);
    group->Broadcast(state);
  }
}

LewmBatch LewmTrainer::Batch(const std::string& split, std::mt19937_64* rng) const {
  const int length = config_.clip_length(), k = config_.frame_skip, s = config_.encoder.image_size;
  // Every rank draws the whole global batch (the same stream) and reads only its share.
  std::vector<VideoData::ClipRef> clips;
  std::vector<const EpisodeRef*> group;  // the episodes of the batch's current run of group mates
  for (int b = 0; b < config_.batch; ++b) {
    // With scene_groups the batch comes in runs of scene_group_size_ clips (2 for twins): the first of
    // a run from any episode, the others each from another episode of its scene group, while the
    // split holds one.
    const EpisodeRef* mate = nullptr;
    if (config_.scene_groups && b % scene_group_size_ != 0) {
      mate = data_.DrawGroupMate(split, *group.front(), rng, group);
    } else {
      group.clear();
    }
    clips.push_back(mate ? data_.DrawClipIn(*mate, length, k, rng) : data_.DrawClip(split, length, k, rng));
    // The grid's per-token term compares tokens at one place: a run's clips are from one camera.
    // With groups that act alike (simcollect --group-actions shared) also from the same moment: the
    // arm is then where it is in the run's first clip, and the objects tell the clips apart.
    if (mate && config_.encoder.head == "grid") {
      const auto& run_first = clips[b - b % scene_group_size_];
      clips.back().camera = run_first.camera;
      if (mate->group_shares_actions && run_first.episode->group_shares_actions && mate->frames == run_first.episode->frames) {
        clips.back().start = run_first.start;
      }
    }
    group.push_back(clips.back().episode);
  }
  // The between-scene positives' frames, with scene_camera or scene_any_time only: the clip's last
  // (scene_camera's view of it), or with scene_any_time any of its episode's.
  std::vector<std::int64_t> view_frames;
  if (!config_.scene_camera.empty() || config_.scene_any_time) {
    for (const auto& clip : clips) {
      const std::int64_t last = clip.start + static_cast<std::int64_t>(length - 1) * k;
      view_frames.push_back(config_.scene_any_time ? std::uniform_int_distribution<std::int64_t>(0, clip.episode->frames - 1)(*rng) : last);
    }
  }
  const auto [first, end] = ShareOf(group_, config_.batch);
  const int count = end - first;
  std::vector<std::uint8_t> bytes, views;
  auto conditions = torch::zeros({count, length - 1, condition_dim_});
  auto episodes = torch::zeros({config_.batch}, torch::kLong);   // the global batch's (every rank drew them all)
  const EpisodeRef* split_first = data_.DrawPool(split).data();  // the clips' own pool (train when the split is empty)
  for (int b = 0; b < config_.batch; ++b) episodes[b] = static_cast<int64_t>(clips[b].episode - split_first);
  for (int b = 0; b < count; ++b) {
    const VideoData::ClipRef& clip = clips[first + b];
    const auto frames = data_.ReadClip(clip, length, k);
    bytes.insert(bytes.end(), frames.begin(), frames.end());
    const EpisodeRef* ep = clip.episode;
    if (!view_frames.empty()) {
      const auto view =
          data_.Frames(*ep, view_frames[first + b], 1, config_.scene_camera.empty() ? data_.clip_cameras().at(clip.camera) : config_.scene_camera);
      views.insert(views.end(), view.begin(), view.end());
    }
    std::vector<hsize_t> dims;
    auto actions = data_.dataset(ep->dataset).Read<float>(ep->demo, collect::keys::kActions, &dims);
    const auto a = torch::from_blob(actions.data(), {static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1])}, torch::kFloat32);
    for (int t = 0; t + 1 < length; ++t) {
      for (int j = 0; j < k; ++j) {
        conditions[b][t].slice(0, j * action_dim_, j * action_dim_ + a.size(1)).copy_(a[clip.start + t * k + j]);
      }
      conditions[b][t][action_dim_ * k + ep->dataset] = 1.0;
    }
  }
  auto frames = torch::from_blob(bytes.data(), {count, length, s, s, 3}, torch::kUInt8).to(device_, /*non_blocking=*/false, /*copy=*/true);
  LewmBatch batch;
  batch.frames = FramesToInput(frames);
  batch.conditions = conditions.to(device_);
  batch.episodes = episodes.to(device_);
  if (!views.empty()) {
    batch.views = FramesToInput(torch::from_blob(views.data(), {count, 1, s, s, 3}, torch::kUInt8).to(device_, false, true)).select(1, 0);
  }
  return batch;
}

std::vector<std::pair<std::string, torch::nn::Module*>> LewmTrainer::Modules() const {
  std::vector<std::pair<std::string, torch::nn::Module*>> modules{{"target", encoder_.ptr().get()}, {"predictor", &Predictor()}};
  if (config_.scene_weight > 0) modules.emplace_back("scene_head", scene_head_.ptr().get());
  if (config_.scene_weight > 0 && config_.scene_queue > 0) modules.emplace_back("scene_queue", scene_queue_.ptr().get());
  if (config_.recon_weight > 0) modules.emplace_back("recon_decoder", recon_decoder_.get());
  return modules;
}

torch::Tensor LewmTrainer::AlterViews(const torch::Tensor& frames, std::uint64_t seed) const {
  // Drawn for the global batch, so that every rank alters its share as one process would.
  const auto [first, end] = ShareOf(group_, config_.batch);
  const int64_t all = config_.batch, s = frames.size(-1);
  const int shift = config_.scene_shift;
  auto generator = at::detail::createCPUGenerator(seed ^ 0x5ce4e5ce4eULL);
  const auto options = torch::TensorOptions(frames.scalar_type());
  const auto gain = (torch::rand({all, 3, 1, 1}, generator, options) * 0.8 + 0.6).slice(0, first, end).to(frames.device());
  const auto offset = (torch::rand({all, 3, 1, 1}, generator, options) * 0.2 - 0.1).slice(0, first, end).to(frames.device());
  auto altered = (frames * gain + offset).clamp(0, 1);
  if (shift <= 0) return altered;
  const auto padded =
      torch::nn::functional::pad(altered, torch::nn::functional::PadFuncOptions({shift, shift, shift, shift}).mode(torch::kReplicate));
  const auto offsets = torch::randint(0, 2 * shift + 1, {all, 2}, generator, torch::TensorOptions(torch::kLong)).slice(0, first, end);
  std::vector<torch::Tensor> views;
  for (int64_t i = 0; i < frames.size(0); ++i) {
    const auto dy = offsets[i][0].item<int64_t>(), dx = offsets[i][1].item<int64_t>();
    views.push_back(padded[i].slice(1, dy, dy + s).slice(2, dx, dx + s));
  }
  return torch::stack(views);
}

torch::Tensor LewmTrainer::Gathered(const torch::Tensor& local) const {
  if (!group_) return local;
  // The global batch's rows on every rank. The gradient reaches this rank's rows only, scaled by the
  // world size: averaging the ranks' gradients then gives the one-process gradient.
  const auto [first, end] = ShareOf(group_, config_.batch);
  auto all = torch::zeros({config_.batch, local.size(1)}, local.options().requires_grad(false));
  all.slice(0, first, end).copy_(local.detach());
  group_->AllReduceSum({all});
  const double w = group_->world_size();
  return torch::cat({all.slice(0, 0, first), local * w - local.detach() * (w - 1), all.slice(0, end)});
}

torch::Tensor LewmTrainer::Loss(const LewmBatch& batch, LewmStats* stats, std::uint64_t direction_seed) {
  const int length = config_.clip_length();
  const auto b = batch.frames.size(0);
  // With --precision bf16 the networks' forward passes autocast; the losses are computed in the weights' precision.
  auto encode = [&](const torch::Tensor& frames) {
    AutocastBf16 autocast(frames.device(), config_.bf16);
    return encoder_->forward(frames).to(frames.scalar_type());
  };
  auto predict = [&](const torch::Tensor& z, const torch::Tensor& z_prev, const torch::Tensor& condition) {
    AutocastBf16 autocast(z.device(), config_.bf16);
    return (grid_predictor_ ? grid_predictor_->forward(z, z_prev, condition) : predictor_->forward(z, z_prev, condition)).to(z.scalar_type());
  };
  // (B, L, D) for the vector, (B, L, N, D) for the grid: a frame's latent is what the predictor steps.
  const auto z = config_.encoder.head == "grid" ? encode(batch.frames) : encode(batch.frames).reshape({b, length, config_.encoder.dim});
  std::vector<torch::Tensor> teacher, rollout, contrast;
  torch::Tensor prev = z.select(1, 0), current = z.select(1, 1);
  for (int t = 1; t + 1 < length; ++t) {
    const auto target = z.select(1, t + 1), condition = batch.conditions.select(1, t);
    const auto predicted = predict(z.select(1, t), z.select(1, t - 1), condition);
    teacher.push_back((predicted - target).pow(2).mean());
    if (config_.contrast_weight > 0) {
      // Which of the clip's frames is the prediction of? (B, L) logits, the answer is frame t + 1.
      const auto logits = -(predicted.unsqueeze(1) - z).pow(2).mean(2) / config_.contrast_temperature;
      contrast.push_back(
          torch::nn::functional::cross_entropy(logits, torch::full({b}, t + 1, torch::TensorOptions(torch::kLong).device(z.device()))));
    }
    const auto next = predict(current, prev, condition);
    if (t > 1) rollout.push_back((next - target).pow(2).mean());  // the first step is the teacher-forced one
    prev = current;
    current = next;
  }
  const auto prediction = rollout.empty() ? torch::stack(teacher).mean() : 0.5 * (torch::stack(teacher).mean() + torch::stack(rollout).mean());
  auto generator = at::detail::createCPUGenerator(direction_seed);
  torch::Tensor sigreg;
  if (z.dim() == 4) {
    // The grid: SIGReg over tokens, on kSigRegTokens drawn per frame (all 64 cost 16x, in the
    // characteristic functions' cos and sin), scaled to the statistic of one sample per frame so that
    // --sigreg-weight means what it means for the vector.
    constexpr int kSigRegTokens = 4;
    const auto frames = z.size(0) * z.size(1), n = z.size(2);
    const auto pick = torch::randint(n, {frames, kSigRegTokens}, generator, torch::TensorOptions(torch::kLong)).to(z.device());
    const auto drawn = z.reshape({frames, n, config_.encoder.dim}).gather(1, pick.unsqueeze(2).expand({frames, kSigRegTokens, config_.encoder.dim}));
    sigreg = SigReg(drawn.reshape({-1, config_.encoder.dim}), config_.sigreg_projections, &generator, group_) / kSigRegTokens;
  } else {
    sigreg = SigReg(z.reshape({-1, config_.encoder.dim}), config_.sigreg_projections, &generator, group_);
  }
  const auto contrastive = contrast.empty() ? torch::zeros({}, z.options()) : torch::stack(contrast).mean();
  auto scene = torch::zeros({}, z.options());
  if (config_.scene_weight > 0 && z.dim() == 4) {
    // Per token, between the layouts of one scene: each token of a clip's first frame must pick, among
    // the tokens at the same place in its group mates' last frames (the same scene, other object
    // layouts), its own clip's, through the projection head. Where the layouts look alike the choice
    // is even (no gradient); where one has an object the others do not, only carrying it wins.
    const int64_t g = scene_group_size_, groups = b / g, n = z.size(2);
    const auto unit = torch::nn::functional::NormalizeFuncOptions().dim(-1);
    auto head = [&](const torch::Tensor& tokens) {
      return torch::nn::functional::normalize(scene_head_->forward(tokens), unit).reshape({groups, g, n, -1}).transpose(1, 2);
    };
    const auto anchors = head(z.select(1, 0)), positives = head(z.select(1, length - 1));         // (groups, N, g, H)
    const auto logits = anchors.matmul(positives.transpose(-1, -2)) / config_.scene_temperature;  // (groups, N, g, g)
    const auto labels = torch::arange(g, torch::TensorOptions(torch::kLong).device(z.device())).repeat({groups * n});
    scene = torch::nn::functional::cross_entropy(logits.reshape({-1, g}), labels);
  } else if (config_.scene_weight > 0 && config_.batch > 1) {
    // The anchor: each clip's first frame as it is; the positive: its last frame (from scene_camera
    // when set) altered (per clip, colours scaled and offset per channel, shifted by up to scene_shift
    // px), encoded apart. Over the global batch (the ranks' projections gathered).
    const auto& last = batch.views.defined() ? batch.views : batch.frames.select(1, length - 1);
    const auto positive = encode(AlterViews(last, direction_seed).unsqueeze(1)).reshape({b, config_.encoder.dim});
    const auto unit = torch::nn::functional::NormalizeFuncOptions().dim(1);
    const auto ha = Gathered(torch::nn::functional::normalize(scene_head_->forward(z.select(1, 0)), unit));
    const auto hp = Gathered(torch::nn::functional::normalize(scene_head_->forward(positive), unit));
    auto logits = ha.mm(hp.t()) / config_.scene_temperature;
    const auto filled = config_.scene_queue > 0 ? scene_queue_->filled.item<int64_t>() : 0;
    if (filled > 0) {  // earlier positives of other episodes as further negatives
      const auto queue = scene_queue_->entries.slice(0, scene_queue_->entries.size(0) - filled).to(ha.scalar_type());
      const auto own = batch.episodes.unsqueeze(1) == scene_queue_->episodes.slice(0, scene_queue_->episodes.size(0) - filled).unsqueeze(0);
      logits = torch::cat({logits, (ha.mm(queue.t()) / config_.scene_temperature).masked_fill(own, -1e9)}, 1);
    }
    scene = torch::nn::functional::cross_entropy(logits, torch::arange(logits.size(0), torch::TensorOptions(torch::kLong).device(z.device())));
    last_positives_ = hp.detach();
    last_episodes_ = batch.episodes;
  }
  auto recon = torch::zeros({}, z.options());
  if (config_.recon_weight > 0) {  // each clip's first frame redrawn from its embedding
    AutocastBf16 autocast(z.device(), config_.bf16);
    const auto first = z.select(1, 0);  // (B, D), or (B, N, D) for the grid
    const auto drawn = (z.dim() == 4 ? std::dynamic_pointer_cast<PatchDecoderImpl>(recon_decoder_)->forward(first)
                                     : std::dynamic_pointer_cast<LatentDecoderImpl>(recon_decoder_)->forward(first.unsqueeze(1)))
                           .to(z.scalar_type());
    recon = (drawn - ReconTarget(batch.frames.select(1, 0), config_.recon_target)).pow(2).mean();
  }
  const auto total = prediction + config_.sigreg_weight * sigreg + config_.contrast_weight * contrastive + config_.scene_weight * scene +
                     config_.recon_weight * recon;
  if (stats) {  // the global batch's figures, in one reduction (SIGReg's already is global)
    auto figures = torch::stack({contrastive.detach(), torch::stack(teacher).mean().detach(),
                                 (z.slice(1, 2) - z.slice(1, 1, -1)).pow(2).mean().detach(), total.detach(), scene.detach(), recon.detach()});
    if (group_) figures = group_->Mean(figures);
    stats->contrast = figures[0].item<double>();
    stats->prediction = figures[1].item<double>();
    stats->copy_last = figures[2].item<double>();
    stats->loss = figures[3].item<double>();
    stats->scene = figures[4].item<double>();
    stats->recon = figures[5].item<double>();
    stats->sigreg = sigreg.item<double>();
  }
  return total;
}

double LewmTrainer::Validate() {
  encoder_->eval();
  Predictor().eval();
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(config_.seed + 1);  // the same clips every time
  double model = 0, copy = 0;
  for (int i = 0; i < 4; ++i) {
    LewmStats s;
    Loss(Batch("valid", &rng), &s, config_.seed + 1 + i);
    model += s.prediction;
    copy += s.copy_last;
  }
  return model / std::max(1e-12, copy);
}

void LewmTrainer::Save() const {
  if (group_ && !group_->is_root()) return;
  // "target" is where FrozenEncoder::Load reads the encoder.
  std::vector<std::pair<std::string, const torch::nn::Module*>> modules;
  for (const auto& [name, module] : Modules()) modules.emplace_back(name, module);
  SaveTrainingCheckpoint(out_, "embody-lewm-v1", config_.ToJson(), modules, *optimizer_, step_, rng_);
}

LewmStats LewmTrainer::Train(bool verbose) {
  LewmStats stats;
  const auto start = Clock::now();
  const int first = step_;
  double loss_sum = 0, pred_sum = 0, sig_sum = 0, copy_sum = 0, contrast_sum = 0, scene_sum = 0, recon_sum = 0;
  int count = 0;
  // The next batch is read on a thread while this step computes (the reader bounds a GPU). It draws
  // from a copy of rng_, which rng_ becomes when the batch is used: the same batches, and the same
  // checkpointed stream, as reading in turn. Only with a thread-safe HDF5 (Debian's is).
  struct Drawn {
    LewmBatch batch;
    std::mt19937_64 rng;
  };
  auto draw = [this](std::mt19937_64 rng) {
    collect::h5::SilenceErrors();
    LewmBatch batch = Batch("train", &rng);
    return Drawn{std::move(batch), rng};
  };
  const bool prefetch = config_.prefetch && collect::h5::ThreadSafe();
  std::future<Drawn> next;
  if (prefetch && step_ < config_.steps) next = std::async(std::launch::async, draw, rng_);
  while (step_ < config_.steps) {
    Drawn drawn = prefetch ? next.get() : draw(rng_);
    rng_ = drawn.rng;
    if (prefetch && step_ + 1 < config_.steps) next = std::async(std::launch::async, draw, rng_);
    encoder_->train();
    Predictor().train();
    for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(LearningRate(config_, step_));
    LewmStats s;
    auto loss = Loss(drawn.batch, &s, config_.seed * 1000003 + step_);
    const double value = s.loss;  // the global batch's loss (Loss reduced it with the other figures)
    if (!std::isfinite(value)) throw AdaptError("loss is " + std::to_string(value) + " at step " + std::to_string(step_) + "; lower --lr");
    optimizer_->zero_grad();
    loss.backward();
    if (group_) group_->AverageGradients(optimizer_->param_groups()[0].params());
    torch::nn::utils::clip_grad_norm_(optimizer_->param_groups()[0].params(), 1.0);
    optimizer_->step();
    if (config_.scene_weight > 0 && config_.scene_queue > 0 && last_positives_.defined()) scene_queue_->Push(last_positives_, last_episodes_);
    ++step_;
    loss_sum += value;
    pred_sum += s.prediction;
    sig_sum += s.sigreg;
    copy_sum += s.copy_last;
    contrast_sum += s.contrast;
    scene_sum += s.scene;
    recon_sum += s.recon;
    ++count;
    stats.step = step_;
    stats.clips_per_s = (step_ - first) * config_.batch / std::max(1e-9, SecondsSince(start));
    if (step_ % config_.log_every == 0 || step_ == config_.steps) {
      stats.loss = loss_sum / count;
      stats.prediction = pred_sum / count;
      stats.sigreg = sig_sum / count;
      stats.copy_last = copy_sum / count;
      stats.contrast = contrast_sum / count;
      stats.scene = scene_sum / count;
      stats.recon = recon_sum / count;
      loss_sum = pred_sum = sig_sum = copy_sum = contrast_sum = scene_sum = recon_sum = 0;
      count = 0;
      if (verbose && (!group_ || group_->is_root())) {
        const double eta = (config_.steps - step_) * config_.batch / std::max(1e-9, stats.clips_per_s);
        std::fprintf(stderr,
                     "pretrain: step %d/%d  loss %.4f (next-embedding %.4f vs copy-last %.4f, SIGReg %.3f, contrast %.3f, scene %.3f, pixels %.4f)  "
                     "%.1f clips/s  "
                     "ETA %.0fs\n",
                     step_, config_.steps, stats.loss, stats.prediction, stats.copy_last, stats.sigreg, stats.contrast, stats.scene, stats.recon,
                     stats.clips_per_s, eta);
      }
    }
    if (step_ % config_.eval_every == 0 || step_ == config_.steps) {
      stats.val_ratio = Validate();
      if (verbose && (!group_ || group_->is_root())) {
        std::fprintf(stderr, "pretrain: step %d  held-out next-embedding MSE / copy-last %.3f  (checkpoint %s)\n", step_, stats.val_ratio,
                     out_.c_str());
      }
      Save();
    }
  }
  return stats;
}

}  // namespace embody::adapt
