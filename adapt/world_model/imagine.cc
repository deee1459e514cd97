#include "adapt/world_model/imagine.h"

#include <algorithm>

#include "adapt/core/error.h"
#include "adapt/encoder/decoder.h"
#include "adapt/encoder/latent_cache.h"
#include "adapt/world_model/readout.h"
#include "adapt/world_model/stage_two.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;

class TorchImaginer : public Imaginer {
 public:
  TorchImaginer(const fs::path& model, const fs::path& dataset, const fs::path& encoder_path, const std::string& camera) {
    std::string hash;
    model_ = LoadWorldModel(model, &hash);
    std::error_code ec;
    if (!fs::exists(encoder_path, ec))
      throw AdaptError("no encoder " + encoder_path.string() + " (pass --encoder, the one the model was trained on)");
    FrozenEncoder encoder = FrozenEncoder::Load(encoder_path);
    if (encoder.hash() != hash) {
      throw AdaptError(model.string() + " was trained on the latents of encoder " + hash + "; " + encoder_path.string() + " is " + encoder.hash());
    }
    // A model of several views reads its own cameras; one of a single view the camera shown.
    const std::vector<std::string> cameras = model_.config().views() > 1 ? model_.config().cameras : std::vector<std::string>{camera};
    std::vector<fs::path> caches;
    for (const auto& c : cameras) caches.push_back(EnsureLatentCache(encoder, dataset, c).path);
    data_ = std::make_unique<StageTwoData>(dataset, caches, cameras);
    embodiment_ = data_->spec().name;
    if (!model_.Has(embodiment_)) {
      std::string known;
      for (const auto& e : model_.embodiments()) known += (known.empty() ? "" : ", ") + e;
      throw AdaptError("the model at " + model.string() + " is for " + known + "; " + dataset.string() + " holds " + embodiment_ + " episodes");
    }
    model_.Train(false);
    std::error_code ec2;
    const fs::path decoder = (fs::is_directory(model, ec2) ? model : model.parent_path()) / "decoder.pt";
    if (fs::exists(decoder, ec2)) decoder_ = LoadDecoder(decoder);
  }

  const std::string& embodiment() const override { return embodiment_; }
  int joints() const override { return data_->spec().joints; }

  Imagination Imagine(const std::string& demo, int start, int context, int horizon, int retrieval_episodes) override {
    torch::NoGradGuard no_grad;
    const StageTwoData::Episode* ep = Find(demo);
    // The model predicts in model steps of k control steps: the last context frame is start - 1, and
    // model step h lands on frame start - 1 + h k. Frames in between show the nearest imagined step.
    const int k = model_.config().frame_skip;
    if (start < 1) throw AdaptError("imagination needs at least one context frame before frame " + std::to_string(start));
    const int c = std::max(1, std::min({context, model_.config().context, (start - 1) / k + 1}));
    const int steps = static_cast<int>(std::min<int64_t>((horizon + k - 1) / k, (ep->frames - start) / k));
    if (steps < 1)
      throw AdaptError("nothing to imagine after frame " + std::to_string(start) + " of " + demo + " (a model step is " + std::to_string(k) +
                       " frames)");
    const int first = start - 1 - (c - 1) * k;
    const auto w = data_->Read(*ep, first, c + steps, k);
    auto batch = [](const torch::Tensor& t) { return t.unsqueeze(0); };
    torch::Tensor prop;
    const auto pred = model_.Rollout(embodiment_, batch(w.latents.slice(0, 0, c)), batch(w.proprio.slice(0, 0, c)),
                                     batch(w.actions.slice(0, 0, c + steps - 1)), batch(w.camera), steps, &prop);
    if (!readout_fitted_) FitReadout();
    Imagination r;
    r.start = start;
    r.horizon = steps * k;
    r.frame_skip = k;
    r.seconds_per_frame = 1.0 / data_->control_hz();
    const EmbodimentSpec& spec = data_->spec();
    const auto truth = w.latents.slice(0, c), truth_prop = w.proprio.slice(0, c);
    const auto last = w.latents.select(0, c - 1);
    // Retrieval candidates: this episode and a few others.
    std::vector<std::pair<std::string, torch::Tensor>> pool = {{demo, data_->Read(*ep, 0, ep->frames).latents}};
    for (const auto& other : data_->episodes("train")) {
      if (static_cast<int>(pool.size()) > retrieval_episodes) break;
      if (other.demo != demo) pool.push_back({other.demo, data_->Read(other, 0, other.frames).latents});
    }
    std::vector<std::vector<std::uint8_t>> decoded;
    if (decoder_) {
      const auto images = (decoder_->forward(pred[0]) * 255).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
      r.decoded_size = static_cast<int>(images.size(1));
      for (int h = 0; h < steps; ++h) {
        const auto img = images[h];
        decoded.emplace_back(img.data_ptr<std::uint8_t>(), img.data_ptr<std::uint8_t>() + img.numel());
      }
    }
    r.image_size = data_->image_size();
    const auto read = readout_.Apply(ReadoutFeatures(pred[0]));  // (steps, C): u, v, x, y, z of the ee first
    const auto truth_uv = EpisodeReadoutTargets(data_->dataset(), demo, data_->camera(), data_->image_size()).values;
    for (int i = 0; i < r.horizon; ++i) {
      const int h = std::clamp(static_cast<int>(std::lround((i + 1.0) / k)), 1, steps) - 1;
      r.readout_ee_uv.push_back({read[h][0].item<double>(), read[h][1].item<double>()});
      const int64_t f = std::min<int64_t>(start + i, truth_uv.size(0) - 1);
      r.true_ee_uv.push_back({truth_uv[f][0].item<double>(), truth_uv[f][1].item<double>()});
      const auto p = pred[0][h];
      if (decoder_) r.decoded.push_back(decoded[h]);
      r.latent_l1.push_back((p - truth[h]).abs().mean().item<double>());
      r.copy_last_l1.push_back((last - truth[h]).abs().mean().item<double>());
      const auto pp = prop[0][h];
      r.proprio.emplace_back(pp.data_ptr<float>(), pp.data_ptr<float>() + pp.numel());
      r.joint_error_rad.push_back((JointPositionsOf(pp, spec) - JointPositionsOf(truth_prop[h], spec)).abs().mean().item<double>());
      r.ee_error_cm.push_back((EePositionOf(pp, spec) - EePositionOf(truth_prop[h], spec)).norm().item<double>() * 100);
      double best = 1e300;
      for (const auto& [name, latents] : pool) {
        const auto d = (latents - p.unsqueeze(0)).abs().mean({1, 2});
        const auto index = d.argmin().item<int64_t>();
        if (d[index].item<double>() < best) {
          best = d[index].item<double>();
          r.nearest_demo.resize(i + 1);
          r.nearest_frame.resize(i + 1);
          r.nearest_demo[i] = name;
          r.nearest_frame[i] = static_cast<int>(index);
        }
      }
    }
    return r;
  }

 private:
  // The read-out of the end effector from latents, fit once on up to 60 training episodes (as adapt's
  // evaluation fits its own).
  void FitReadout() {
    readout_ = FitStateReadout(*data_, 60);
    readout_fitted_ = true;
  }

  const StageTwoData::Episode* Find(const std::string& demo) const {
    for (const std::string split : {"train", "valid"}) {
      for (const auto& e : data_->episodes(split)) {
        if (e.demo == demo) return &e;
      }
    }
    throw AdaptError("no episode " + demo + " in " + data_->path().string());
  }

  WorldModel model_;
  LinearReadout readout_;
  bool readout_fitted_ = false;
  LatentDecoder decoder_{nullptr};
  std::unique_ptr<StageTwoData> data_;
  std::string embodiment_;
};

}  // namespace

std::unique_ptr<Imaginer> Imaginer::Open(const fs::path& model, const fs::path& dataset, const fs::path& encoder, const std::string& camera) {
  return std::make_unique<TorchImaginer>(model, dataset, encoder, camera);
}

}  // namespace embody::adapt
