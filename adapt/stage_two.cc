#include "adapt/stage_two.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <thread>

#include "adapt/latent_cache.h"
#include "adapt/video_data.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
namespace h5 = collect::h5;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

torch::Tensor Matrix(const collect::Dataset& ds, const std::string& demo, const std::string& name) {
  std::vector<hsize_t> dims;
  auto values = ds.Read<float>(demo, name, &dims);
  const int64_t cols = dims.size() > 1 ? static_cast<int64_t>(dims[1]) : 1;
  return torch::from_blob(values.data(), {static_cast<int64_t>(dims[0]), cols}, torch::kFloat32).clone();
}

void AtomicSave(torch::serialize::OutputArchive& archive, const fs::path& path) {
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
  const auto tmp = path.string() + ".tmp";
  archive.save_to(tmp);
  fs::rename(tmp, path);
}

torch::Tensor StackWindows(const std::vector<StageTwoData::Window>& w, torch::Tensor StageTwoData::Window::*field) {
  std::vector<torch::Tensor> parts;
  for (const auto& x : w) parts.push_back(x.*field);
  return torch::stack(parts);
}

torch::Tensor CatWindows(const std::vector<StageTwoData::Window>& w, torch::Tensor StageTwoData::Window::*field) {
  std::vector<torch::Tensor> parts;
  for (const auto& x : w) parts.push_back(x.*field);
  return torch::cat(parts);
}

StageTwoData::Window Stack(const std::vector<StageTwoData::Window>& w) {
  using W = StageTwoData::Window;
  return {StackWindows(w, &W::latents),   StackWindows(w, &W::proprio),   StackWindows(w, &W::actions),
          StackWindows(w, &W::camera),    CatWindows(w, &W::dyn_proprio), CatWindows(w, &W::dyn_actions),
          CatWindows(w, &W::dyn_next)};
}

}  // namespace

// ---------------------------------------------------------------------------------------------- data

StageTwoData::StageTwoData(const fs::path& dataset, const fs::path& cache, const std::string& camera, int max_train_episodes)
    : path_(dataset), cache_path_(cache), camera_(camera) {
  std::error_code ec;
  if (!fs::exists(dataset, ec)) throw AdaptError("no " + dataset.string());
  try {
    dataset_ = std::make_unique<collect::Dataset>(dataset);
  } catch (const collect::DatasetError& e) {
    throw AdaptError(e.what());
  }
  const nlohmann::json& meta = dataset_->meta();
  if (!meta.contains("embodiment") || dataset_->demos().empty()) {
    throw AdaptError(dataset.string() + " is not an Embody dataset with episodes (no embodiment in /data attributes)");
  }
  const std::string& first = dataset_->demos().front();
  spec_.name = meta.at("embodiment");
  spec_.joints = static_cast<int>(meta.at("joint_names").size());
  spec_.action_dim = static_cast<int>(meta.at("action_space").at("names").size());
  for (const auto& n : meta.at("action_space").at("names")) spec_.action_kind += (spec_.action_kind.empty() ? "" : ",") + n.get<std::string>();
  if (dataset_->HasDataset(first, "obs/robot0_gripper_qpos")) spec_.gripper = static_cast<int>(Matrix(*dataset_, first, "obs/robot0_gripper_qpos").size(1));
  const auto actions = Matrix(*dataset_, first, "actions");
  if (actions.size(1) != spec_.action_dim) {
    throw AdaptError(dataset.string() + ": actions have " + std::to_string(actions.size(1)) + " dimensions, its action space names " +
                     std::to_string(spec_.action_dim));
  }

  if (!fs::exists(cache, ec)) throw AdaptError("no latent cache " + cache.string() + " — run: encode --data " + dataset.string());
  try {
    cache_ = h5::OpenFile(cache.string());
    encoder_hash_ = h5::GetStringAttr(cache_, "encoder_hash");
    if (h5::GetStringAttr(cache_, "dataset_fingerprint") != DatasetFingerprint(dataset) || h5::GetStringAttr(cache_, "camera") != camera) {
      throw AdaptError("latent cache " + cache.string() + " is stale (the dataset or camera changed) — run: encode --data " + dataset.string());
    }
    std::vector<hsize_t> dims;
    h5::ReadRows<float>(cache_, first + "/latents", 0, 1, &dims);
    if (dims.size() != 3) throw AdaptError(cache.string() + ": latents must be (frames, N, D)");
    tokens_ = static_cast<int>(dims[1]);
    latent_dim_ = static_cast<int>(dims[2]);
  } catch (const collect::DatasetError& e) {
    throw AdaptError(cache.string() + " is not a latent cache: " + e.what());
  }

  for (const std::string split : {"train", "valid"}) {
    auto& list = split == "train" ? train_ : valid_;
    for (const auto& demo : dataset_->Mask(split)) {
      if (split == "train" && max_train_episodes > 0 && static_cast<int>(list.size()) >= max_train_episodes) break;
      list.push_back({demo, dataset_->StringAttr(demo, "task"), dataset_->NumSamples(demo), dataset_->IntAttr(demo, "success") != 0});
    }
  }
  if (train_.empty()) throw AdaptError(dataset.string() + " has no training episodes (/mask/train is empty)");
}

StageTwoData::Window StageTwoData::Read(const Episode& ep, std::int64_t first, std::int64_t count) const {
  if (first < 0 || first + count > ep.frames) throw AdaptError(ep.demo + ": frames out of range");
  Window w;
  std::vector<hsize_t> dims;
  std::vector<float> values;
  try {
    values = h5::ReadRows<float>(cache_, ep.demo + "/latents", first, count, &dims);
  } catch (const collect::DatasetError& e) {
    throw AdaptError(cache_path_.string() + ": " + ep.demo + ": " + e.what());
  }
  w.latents = F::layer_norm(torch::from_blob(values.data(), {count, tokens_, latent_dim_}, torch::kFloat32).clone(),
                            F::LayerNormFuncOptions({latent_dim_}));
  const auto proprio = Proprio(ep), actions = Matrix(*dataset_, ep.demo, "actions");
  w.proprio = proprio.slice(0, first, first + count);
  w.actions = actions.slice(0, first, first + count);
  w.dyn_proprio = proprio.slice(0, 0, -1);
  w.dyn_actions = actions.slice(0, 0, -1);
  w.dyn_next = proprio.slice(0, 1);
  w.camera = CameraFeatures(dataset_->Read<double>(ep.demo, "camera/" + camera_ + "/extrinsics"));
  return w;
}

torch::Tensor StageTwoData::Proprio(const Episode& ep) const {
  std::vector<torch::Tensor> parts = {Matrix(*dataset_, ep.demo, "obs/robot0_joint_pos"), Matrix(*dataset_, ep.demo, "obs/robot0_joint_vel"),
                                      Matrix(*dataset_, ep.demo, "obs/robot0_eef_pos"), Matrix(*dataset_, ep.demo, "obs/robot0_eef_quat")};
  if (spec_.gripper > 0) parts.push_back(Matrix(*dataset_, ep.demo, "obs/robot0_gripper_qpos"));
  return torch::cat(parts, 1);
}

std::vector<std::uint8_t> StageTwoData::Frames(const Episode& ep, std::int64_t first, std::int64_t count, int* image_size) const {
  std::vector<hsize_t> dims;
  auto frames = dataset_->ReadFrames(ep.demo, camera_, static_cast<hsize_t>(first), static_cast<hsize_t>(count), &dims);
  if (image_size) *image_size = static_cast<int>(dims[1]);
  return frames;
}

double StageTwoData::LatentDeltaScale(int max_episodes) const {
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < train_.size() && static_cast<int>(i) < max_episodes; ++i) {
    if (train_[i].frames < 2) continue;
    const auto z = Read(train_[i], 0, train_[i].frames).latents;
    sum += (z.slice(0, 1) - z.slice(0, 0, -1)).abs().mean().item<double>();
    ++n;
  }
  return n > 0 ? std::max(1e-6, sum / n) : 1.0;
}

Normalizer StageTwoData::ComputeNormalizer(int max_episodes) const {
  std::vector<torch::Tensor> p, d;
  for (size_t i = 0; i < train_.size() && static_cast<int>(i) < max_episodes; ++i) {
    const auto prop = Proprio(train_[i]);
    p.push_back(prop);
    d.push_back(prop.slice(0, 1) - prop.slice(0, 0, -1));
  }
  const auto all_p = torch::cat(p), all_d = torch::cat(d);
  return {all_p.mean(0), all_p.std(0).clamp_min(1e-3), all_d.mean(0), all_d.std(0).clamp_min(1e-4)};
}

// ------------------------------------------------------------------------------------------ training

nlohmann::json AdaptConfig::ToJson() const { return *this; }
AdaptConfig AdaptConfig::FromJson(const nlohmann::json& j) { return j.get<AdaptConfig>(); }

StageTwoTrainer::StageTwoTrainer(const AdaptConfig& config, const StageTwoData& data, WorldModel model, const fs::path& out, bool resume)
    : config_(config), data_(data), model_(std::move(model)), out_(out), rng_(config.seed) {
  torch::set_num_threads(config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  if (data.episodes("valid").empty()) {
    throw AdaptError(data.path().string() + " has no held-out episodes (/mask/valid is empty); collect at least 10 episodes");
  }
  if (config.rollout < 1 || config.rollout > config.predictor.context) {
    throw AdaptError("--rollout must be 1.." + std::to_string(config.predictor.context) + " (the predictor context)");
  }
  for (const auto& ep : data.episodes("train")) {
    if (ep.frames < config.predictor.context + 1) {
      throw AdaptError(data.path().string() + ": episode " + ep.demo + " has " + std::to_string(ep.frames) + " frames; training windows need " +
                       std::to_string(config.predictor.context + 1));
    }
  }
  const fs::path state = out / "train_state.pt";
  std::error_code ec;
  torch::serialize::InputArchive archive;
  const bool resuming = resume && fs::exists(state, ec);
  if (resuming) {
    archive.load_from(state.string());
    c10::IValue value;
    archive.read("config", value);
    auto comparable = [](nlohmann::json j) {
      j.erase("steps");
      return j;
    };
    const AdaptConfig saved = AdaptConfig::FromJson(nlohmann::json::parse(value.toStringRef()));
    if (comparable(saved.ToJson()) != comparable(config.ToJson())) {
      throw AdaptError(state.string() + " was trained with other options (" + saved.ToJson().dump() + "); rerun with those to --resume");
    }
    torch::serialize::InputArchive sub;
    archive.read("model", sub);
    model_ = WorldModel::Load(sub);
  } else if (resume) {
    throw AdaptError("nothing to resume: no " + state.string());
  } else if (fs::exists(out / "model.pt", ec)) {
    throw AdaptError(out.string() + " already holds a model; pass --resume to continue training it or --overwrite");
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(model_.Parameters(data.spec().name, config.freeze_trunk),
                                                     torch::optim::AdamWOptions(config.lr).weight_decay(config.weight_decay));
  if (resuming) {
    torch::serialize::InputArchive sub;
    c10::IValue value;
    archive.read("optimizer", sub);
    optimizer_->load(sub);
    archive.read("rng", value);
    std::istringstream(value.toStringRef()) >> rng_;
    archive.read("stats", value);
    const auto s = nlohmann::json::parse(value.toStringRef());
    stats_.step = s.at("step");
    stats_.best_step = s.at("best_step");
    stats_.best_val = s.at("best_val");
    stats_.val_loss = s.at("val_loss");
    stats_.early_stopped = s.at("early_stopped");
    stats_.history = s.at("history").get<std::vector<std::array<double, 3>>>();
  }
}

double StageTwoTrainer::LearningRate(int step) const {
  const double s = config_.steps;
  const double warmup = std::max(1.0, config_.warmup * s), decay_start = s * (1 - config_.decay);
  if (step < warmup) return config_.lr * (step + 1) / warmup;
  if (step < decay_start) return config_.lr;
  return config_.lr * std::max(0.0, (s - step) / std::max(1.0, s - decay_start));
}

StageTwoData::Window StageTwoTrainer::Batch(const std::string& split, std::mt19937_64* rng) const {
  const auto& episodes = data_.episodes(split);
  const int length = config_.predictor.context + 1;
  std::vector<StageTwoData::Window> windows;
  for (int b = 0; b < config_.batch; ++b) {
    const auto& ep = episodes[(*rng)() % episodes.size()];
    const auto first = static_cast<std::int64_t>((*rng)() % static_cast<std::uint64_t>(ep.frames - length + 1));
    windows.push_back(data_.Read(ep, first, length));
  }
  return Stack(windows);
}

AdaptLosses StageTwoLosses(WorldModel& model, const std::string& emb, const StageTwoData::Window& w, int c, int rollout) {
  AdaptLosses l;
  const auto tf = model.Predict(emb, w.latents.slice(1, 0, c), w.proprio.slice(1, 0, c), w.actions.slice(1, 0, c), w.camera);
  // Latent errors relative to copy-last on the same frames: frame-to-frame changes are small next to
  // the latents themselves, and a scale-free loss keeps the latent and dynamics terms comparable.
  const auto copy_l1 = [&](int t) { return (w.latents.select(1, t - 1) - w.latents.select(1, t)).abs().mean().detach().clamp_min(1e-8); };
  l.teacher = (tf - w.latents.slice(1, 1, c + 1)).abs().mean() / (w.latents.slice(1, 0, c) - w.latents.slice(1, 1, c + 1)).abs().mean().detach().clamp_min(1e-8);
  // Multi-step: true frames 0..first-1, then the model's own predictions, up to frame c.
  const int first = c - rollout + 1;
  std::vector<torch::Tensor> inputs = w.latents.slice(1, 0, first).unbind(1);
  inputs.push_back(tf.select(1, first - 1));
  std::vector<torch::Tensor> losses;
  for (int t = first + 1; t <= c; ++t) {
    const auto next = model.Predict(emb, torch::stack(inputs, 1), w.proprio.slice(1, 0, t), w.actions.slice(1, 0, t), w.camera).select(1, -1);
    losses.push_back((next - w.latents.select(1, t)).abs().mean() / copy_l1(t));
    inputs.push_back(next);
  }
  l.rollout = losses.empty() ? torch::zeros({}) : torch::stack(losses).mean();
  const Normalizer& n = model.normalizer(emb);
  const auto target = ((w.dyn_next - w.dyn_proprio) - n.delta_mean) / n.delta_std;
  l.dynamics = (model.DynamicsDelta(emb, n.Normalize(w.dyn_proprio), w.dyn_actions) - target).abs().mean();
  return l;
}

AdaptLosses StageTwoTrainer::Losses(const StageTwoData::Window& w) {
  return StageTwoLosses(model_, data_.spec().name, w, config_.predictor.context, config_.rollout);
}

double StageTwoTrainer::Validate() {
  model_.Train(false);
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(config_.seed + 1);  // the same windows every time
  double total = 0;
  for (int i = 0; i < config_.val_batches; ++i) total += Losses(Batch("valid", &rng)).total().item<double>();
  return total / config_.val_batches;
}

void StageTwoTrainer::SaveState(const TrainStats& s) const {
  torch::serialize::OutputArchive archive, model, optimizer;
  archive.write("config", c10::IValue(config_.ToJson().dump()));
  model_.Save(model);
  archive.write("model", model);
  optimizer_->save(optimizer);
  archive.write("optimizer", optimizer);
  std::ostringstream rng;
  rng << rng_;
  archive.write("rng", c10::IValue(rng.str()));
  const nlohmann::json stats = {{"step", s.step},         {"best_step", s.best_step}, {"best_val", s.best_val},
                                {"val_loss", s.val_loss}, {"early_stopped", s.early_stopped}, {"history", s.history}};
  archive.write("stats", c10::IValue(stats.dump()));
  AtomicSave(archive, out_ / "train_state.pt");
}

TrainStats StageTwoTrainer::Train(bool verbose) {
  const std::string& emb = data_.spec().name;
  const auto start = Clock::now();
  const int first = stats_.step;
  double loss_sum = 0;
  int loss_count = 0, bad_evals = 0;
  if (!stats_.history.empty()) {
    for (auto it = stats_.history.rbegin(); it != stats_.history.rend() && (*it)[2] > stats_.best_val; ++it) ++bad_evals;
  }
  if (stats_.step == 0) {  // the untrained model is the copy-last baseline: the first best to beat
    stats_.best_val = Validate();
    stats_.history.push_back({0.0, stats_.best_val, stats_.best_val});
    SaveWorldModel(model_, data_.encoder_hash(), {{"step", 0}, {"embodiment", emb}}, out_ / "model.pt");
    if (verbose) std::fprintf(stderr, "adapt: step 0  validation loss %.4f (copy-last predictor, dynamics untrained)\n", stats_.best_val);
  }
  while (stats_.step < config_.steps && !stats_.early_stopped) {
    model_.Train(true);
    for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(LearningRate(stats_.step));
    const auto losses = Losses(Batch("train", &rng_));
    auto loss = losses.total();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) throw AdaptError("loss is " + std::to_string(value) + " at step " + std::to_string(stats_.step) + "; lower --lr");
    optimizer_->zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model_.PredictorParameters(emb, config_.freeze_trunk), 1.0);
    torch::nn::utils::clip_grad_norm_(model_.DynamicsParameters(emb), 1.0);
    optimizer_->step();
    ++stats_.step;
    loss_sum += value;
    ++loss_count;
    stats_.samples_per_s = (stats_.step - first) * config_.batch / std::max(1e-9, Since(start));
    if (stats_.step % 25 == 0 && verbose) {
      const double eta = (config_.steps - stats_.step) * config_.batch / std::max(1e-9, stats_.samples_per_s);
      std::fprintf(stderr, "adapt: step %d/%d  loss %.4f (teacher %.4f rollout %.4f dynamics %.4f)  %.1f samples/s  ETA %.0fs\n",
                   stats_.step, config_.steps, value, losses.teacher.item<double>(), losses.rollout.item<double>(),
                   losses.dynamics.item<double>(), stats_.samples_per_s, eta);
    }
    if (stats_.step % config_.eval_every == 0 || stats_.step == config_.steps) {
      stats_.loss = loss_sum / loss_count;
      loss_sum = 0;
      loss_count = 0;
      stats_.val_loss = Validate();
      stats_.history.push_back({static_cast<double>(stats_.step), stats_.loss, stats_.val_loss});
      const bool better = stats_.val_loss < stats_.best_val;
      if (better) {
        stats_.best_val = stats_.val_loss;
        stats_.best_step = stats_.step;
        bad_evals = 0;
        SaveWorldModel(model_, data_.encoder_hash(), {{"step", stats_.step}, {"embodiment", emb}, {"val_loss", stats_.val_loss}},
                       out_ / "model.pt");
      } else if (++bad_evals >= config_.patience) {
        stats_.early_stopped = true;
      }
      if (verbose) {
        std::fprintf(stderr, "adapt: step %d  validation loss %.4f%s%s\n", stats_.step, stats_.val_loss, better ? "  (best: model.pt)" : "",
                     stats_.early_stopped ? "  early stop" : "");
      }
      SaveState(stats_);
    }
  }
  return stats_;
}

void SaveWorldModel(const WorldModel& model, const std::string& encoder_hash, const nlohmann::json& info, const fs::path& path) {
  torch::serialize::OutputArchive archive;
  model.Save(archive);
  archive.write("encoder_hash", c10::IValue(encoder_hash));
  archive.write("info", c10::IValue(info.dump()));
  AtomicSave(archive, path);
}

WorldModel LoadWorldModel(const fs::path& path, std::string* encoder_hash, nlohmann::json* info) {
  std::error_code ec;
  const fs::path file = fs::is_directory(path, ec) ? path / "model.pt" : path;
  if (!fs::exists(file, ec)) throw AdaptError("no model " + file.string());
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string());
  } catch (const c10::Error&) {
    throw AdaptError(file.string() + " is not a stage-two model (not a LibTorch archive)");
  }
  try {
    WorldModel model = WorldModel::Load(archive);
    c10::IValue value;
    archive.read("encoder_hash", value);
    if (encoder_hash) *encoder_hash = value.toStringRef();
    archive.read("info", value);
    if (info) *info = nlohmann::json::parse(value.toStringRef());
    return model;
  } catch (const AdaptError& e) {
    throw AdaptError(file.string() + ": " + e.what());
  } catch (const c10::Error& e) {
    throw AdaptError(file.string() + " is not a stage-two model: " + e.what_without_backtrace());
  }
}

// ---------------------------------------------------------------------------------------- evaluation

nlohmann::json Evaluate(WorldModel& model, const StageTwoData& data, const EvalOptions& o) {
  const std::string& emb = data.spec().name;
  const int k = o.context, h = o.horizon, j = data.spec().joints;
  if (k < 1 || h < 1) throw AdaptError("evaluation needs context >= 1 and horizon >= 1");
  model.Train(false);
  torch::NoGradGuard no_grad;
  struct Sums {
    torch::Tensor model, copy, joint, ee, ee_still;
    int64_t windows = 0;
  };
  std::map<std::string, Sums> sums;
  int episodes = 0;
  for (const auto& ep : data.episodes("valid")) {
    if (episodes >= o.max_episodes) break;
    if (ep.frames < k + h) continue;
    ++episodes;
    const auto full = data.Read(ep, 0, ep.frames);  // one read per episode; the windows are slices of it
    std::vector<torch::Tensor> lat, pro, act;
    for (int64_t s = 0; s + k + h <= ep.frames; s += h) {
      lat.push_back(full.latents.slice(0, s, s + k + h));
      pro.push_back(full.proprio.slice(0, s, s + k + h));
      act.push_back(full.actions.slice(0, s, s + k + h));
    }
    StageTwoData::Window w;
    w.latents = torch::stack(lat);
    w.proprio = torch::stack(pro);
    w.actions = torch::stack(act);
    w.camera = full.camera.unsqueeze(0).expand({w.latents.size(0), full.camera.size(0)});
    torch::Tensor prop_pred;
    const auto pred = model.Rollout(emb, w.latents.slice(1, 0, k), w.proprio.slice(1, 0, k), w.actions.slice(1, 0, k + h - 1), w.camera, h,
                                    &prop_pred);
    const auto truth = w.latents.slice(1, k), truth_prop = w.proprio.slice(1, k);
    const auto copy = w.latents.select(1, k - 1).unsqueeze(1).expand_as(truth);
    const int64_t n = w.latents.size(0);
    const auto model_err = (pred - truth).abs().mean({2, 3}).sum(0), copy_err = (copy - truth).abs().mean({2, 3}).sum(0);
    const auto joint_err = (prop_pred.slice(2, 0, j) - truth_prop.slice(2, 0, j)).abs().mean(2).sum(0);
    const auto ee_err = (prop_pred.slice(2, 2 * j, 2 * j + 3) - truth_prop.slice(2, 2 * j, 2 * j + 3)).norm(2, 2).sum(0) * 100.0;
    const auto ee_still = (w.proprio.select(1, k - 1).slice(1, 2 * j, 2 * j + 3).unsqueeze(1) - truth_prop.slice(2, 2 * j, 2 * j + 3))
                              .norm(2, 2).sum(0) * 100.0;
    for (const std::string& key : {std::string("all"), ep.task}) {
      Sums& s = sums[key];
      if (s.windows == 0) {
        s.model = model_err.clone();
        s.copy = copy_err.clone();
        s.joint = joint_err.clone();
        s.ee = ee_err.clone();
        s.ee_still = ee_still.clone();
      } else {
        s.model += model_err;
        s.copy += copy_err;
        s.joint += joint_err;
        s.ee += ee_err;
        s.ee_still += ee_still;
      }
      s.windows += n;
    }
  }
  if (sums.empty()) throw AdaptError("no held-out episode is long enough for context " + std::to_string(k) + " + horizon " + std::to_string(h));
  auto list = [](const torch::Tensor& t) {
    std::vector<double> v;
    for (int64_t i = 0; i < t.size(0); ++i) v.push_back(t[i].item<double>());
    return v;
  };
  nlohmann::json tasks;
  for (const auto& [task, s] : sums) {
    const double n = static_cast<double>(s.windows);
    tasks[task] = {{"windows", s.windows},
                   {"latent_l1", list(s.model / n)},
                   {"copy_last_l1", list(s.copy / n)},
                   {"ratio", list(s.model / s.copy)},
                   {"joint_error_rad", list(s.joint / n)},
                   {"ee_error_cm", list(s.ee / n)},
                   {"ee_still_cm", list(s.ee_still / n)}};
  }
  const auto& all = tasks["all"];
  const double r1 = all["ratio"][0], rh = all["ratio"][std::min(h, 8) - 1], ee1 = all["ee_error_cm"][0];
  return {{"embodiment", emb},
          {"dataset", data.path().string()},
          {"encoder_hash", data.encoder_hash()},
          {"context", k},
          {"horizon", h},
          {"episodes", episodes},
          {"tasks", tasks},
          {"targets", {{"ratio_h1", 0.6}, {"ratio_h8", 0.8}, {"ee_error_cm_h1", 1.0}}},
          {"met", {{"ratio_h1", r1 <= 0.6}, {"ratio_h8", h >= 8 && rh <= 0.8}, {"ee_error_cm_h1", ee1 <= 1.0}}}};
}

std::string FormatEvalTable(const nlohmann::json& m) {
  std::ostringstream out;
  char line[256];
  const auto& all = m.at("tasks").at("all");
  std::snprintf(line, sizeof line, "open-loop evaluation, %s, %d held-out episodes, %lld windows, %d context frames:\n",
                m.at("embodiment").get<std::string>().c_str(), m.at("episodes").get<int>(), static_cast<long long>(all.at("windows").get<int64_t>()),
                m.at("context").get<int>());
  out << line;
  std::snprintf(line, sizeof line, "  %7s %12s %12s %8s %14s %12s %16s\n", "horizon", "latent L1", "copy-last", "ratio", "joints (rad)", "ee (cm)",
                "ee if still (cm)");
  out << line;
  const int h = m.at("horizon");
  for (int i = 0; i < h; ++i) {
    std::snprintf(line, sizeof line, "  %7d %12.4f %12.4f %8.3f %14.4f %12.3f %16.3f\n", i + 1, all["latent_l1"][i].get<double>(),
                  all["copy_last_l1"][i].get<double>(), all["ratio"][i].get<double>(), all["joint_error_rad"][i].get<double>(),
                  all["ee_error_cm"][i].get<double>(), all["ee_still_cm"][i].get<double>());
    out << line;
  }
  out << "  per task (ratio to copy-last at horizon 1 / " << h << ", ee cm at 1):\n";
  for (const auto& [task, t] : m.at("tasks").items()) {
    if (task == "all") continue;
    std::snprintf(line, sizeof line, "  %-8s %5lld windows  ratio %.3f / %.3f  ee %.3f cm\n", task.c_str(),
                  static_cast<long long>(t.at("windows").get<int64_t>()), t["ratio"][0].get<double>(), t["ratio"][h - 1].get<double>(),
                  t["ee_error_cm"][0].get<double>());
    out << line;
  }
  const double r1 = all["ratio"][0], ee1 = all["ee_error_cm"][0];
  std::snprintf(line, sizeof line, "  targets: ratio h1 %.3f <= 0.6 %s", r1, r1 <= 0.6 ? "met" : "NOT met");
  out << line;
  if (h >= 8) {
    const double r8 = all["ratio"][7];
    std::snprintf(line, sizeof line, ", ratio h8 %.3f <= 0.8 %s", r8, r8 <= 0.8 ? "met" : "NOT met");
    out << line;
  }
  std::snprintf(line, sizeof line, ", ee h1 %.3f cm <= 1 %s\n", ee1, ee1 <= 1.0 ? "met" : "NOT met");
  out << line;
  return out.str();
}

}  // namespace embody::adapt
