// Stage one: a JEPA trained on video alone. A context encoder sees a clip with spatio-temporal
// blocks masked out; a predictor predicts, at the masked positions, the latents a target encoder
// (exponential moving average of the context encoder) gives for the full clip. L1 loss in latent
// space (targets layer-normalized, as in V-JEPA); no pixel reconstruction anywhere.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "adapt/encoder/encoder.h"
#include "adapt/encoder/video_data.h"

namespace embody::adapt {

struct JepaConfig {
  EncoderConfig encoder;
  int clip_length = 4;        ///< frames per clip (T)
  int clip_stride = 2;        ///< control steps between clip frames
  double mask_ratio = 0.6;    ///< target fraction of tokens hidden from the context encoder
  bool mask_per_clip = true;  ///< a tube mask per clip (false: one per batch, as before)
  int batch = 16;
  int steps = 1500;
  double lr = 1e-3;
  double weight_decay = 0.04;
  double ema_start = 0.99, ema_end = 0.999;
  int predictor_depth = 2, predictor_heads = 4;
  int threads = 0;             ///< 0: all cores
  std::string device = "cpu";  ///< where training runs (torch::Device syntax); not part of the run's identity
  std::uint64_t seed = 0;
  int log_every = 25, eval_every = 250;
  nlohmann::json ToJson() const;  ///< the fields that define the training run (not threads or logging)
  static JepaConfig FromJson(const nlohmann::json& j);
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(JepaConfig, encoder, clip_length, clip_stride, mask_ratio, mask_per_clip, batch, steps, lr, weight_decay,
                                   ema_start, ema_end, predictor_depth, predictor_heads, seed)

/// Spatio-temporal block ("tube") mask over a (T, grid, grid) token volume: random rectangles that
/// span all frames are added until about `ratio` of the tokens are hidden. Never hides every token
/// and never hides none. Returns T*grid*grid flags, true = masked.
std::vector<bool> SampleTubeMask(int frames, int grid, double ratio, std::mt19937_64* rng);

/// target <- momentum * target + (1 - momentum) * online, parameter by parameter.
void EmaUpdate(torch::nn::Module& target, const torch::nn::Module& online, double momentum);

/// Predicts target latents at masked positions from the context tokens.
struct PredictorImpl : torch::nn::Module {
  PredictorImpl(int tokens, int dim, int depth, int heads);
  /// context (B, M, D) with M = T*N tokens, mask (B, M) bool: masked positions get the mask token.
  torch::Tensor forward(const torch::Tensor& context, const torch::Tensor& mask);
  torch::Tensor mask_token, pos_embed;
  torch::nn::Linear in{nullptr}, out{nullptr};
  std::vector<torch::nn::TransformerEncoderLayer> layers;
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Predictor);

struct PretrainStats {
  int step = 0;
  double loss = 0, val_loss = 0, target_std = 0, clips_per_s = 0;
};

/// Trains (or resumes) a JEPA and keeps a checkpoint at `out` (written atomically every eval).
class Pretrainer {
 public:
  Pretrainer(const JepaConfig& config, const VideoData& data, const std::filesystem::path& out, bool resume);
  /// Runs to config.steps. Prints progress to stderr when `verbose`. Returns the last stats.
  /// @throws AdaptError on NaN loss or representation collapse.
  PretrainStats Train(bool verbose = true);
  /// One optimization step on a batch of clips; returns (loss, mean per-dim std of target latents).
  std::pair<double, double> Step(const torch::Tensor& clips);
  /// Mean loss on fixed validation clips (no gradient).
  double Validate();
  void Save() const;

  ConvEncoder& online() { return online_; }
  ConvEncoder& target() { return target_; }

 private:
  torch::Tensor Batch(const std::string& split, std::mt19937_64* rng) const;
  torch::Tensor Loss(const torch::Tensor& clips, std::mt19937_64* rng, double* target_std);

  JepaConfig config_;
  const VideoData& data_;
  std::filesystem::path out_;
  ConvEncoder online_{nullptr}, target_{nullptr};
  Predictor predictor_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::mt19937_64 rng_;
  torch::Device device_ = torch::kCPU;
  int step_ = 0;
  int collapsed_steps_ = 0;
};

/// R^2 of one probed point: averaged over its three coordinates, and per coordinate.
struct ProbeScore {
  double r2 = 0;
  std::array<double, 3> axes{};
};

/// R^2 of linear probes on frozen, pooled latents of held-out episodes.
struct ProbeResult {
  ProbeScore ee_world, object_world;  ///< positions in the world frame (= the robot's base frame, up to its small randomization)
  ProbeScore ee, object;              ///< positions in the camera frame (x, y, z)
  ProbeScore ee_image, object_image;  ///< the same points in the image plane (u/W, v/H, depth)
  std::int64_t train_frames = 0, test_frames = 0;
  std::int64_t object_out_of_view = 0;  ///< test frames where the object is out of view: left out of its probes
};

/// Frames and probe targets of a split's episodes (every `frame_stride`-th frame), read once and
/// shared by the probes of several encoders and by the supervised ceiling.
struct ProbeSet {
  std::vector<torch::Tensor> frames;          ///< per episode: (n, H, W, 3) uint8
  std::vector<torch::Tensor> targets;         ///< per episode: (n, 18) ee, object in the world frame, camera frame, image plane
  std::vector<torch::Tensor> object_in_view;  ///< per episode: (n) bool, the object projects into the image
  std::int64_t size() const;                  ///< frames in all episodes
};
/// @throws AdaptError when the split has no episodes.
ProbeSet LoadProbeSet(const VideoData& data, const std::string& split, int max_episodes, int frame_stride = 3);

/// Fits ridge probes from pooled latents (tokens averaged to a 4x4 grid per frame) to the end-effector
/// position and the first object's position, in the world frame, the episode camera's frame and its
/// image plane, on `train` (the ridge strength chosen on every fifth training episode), and scores them on
/// `test`; the object's probes on the frames where it is in view only (`object_out_of_view` counts the rest).
ProbeResult EvaluateProbes(FrozenEncoder& encoder, const ProbeSet& train, const ProbeSet& test);
/// The same on the datasets' /mask/train and /mask/valid episodes.
ProbeResult EvaluateProbes(FrozenEncoder& encoder, const VideoData& data, int max_episodes = 1000, int frame_stride = 3);

/// A probe of equal capacity for every latent design (V-JEPA's attentive probe, small): each token
/// projected to `width` with a learned position per token, one learned query attending over them
/// (4 heads), then an MLP (width -> 256 -> outputs). A vector is one token, a grid its N; the
/// parameters differ only by the input projection and the positions (D x width + N x width).
struct AttentiveProbeImpl : torch::nn::Module {
  AttentiveProbeImpl(int tokens, int dim, int outputs, int width = 64);
  /// tokens (n, N, D) -> (n, outputs).
  torch::Tensor forward(const torch::Tensor& tokens);
  torch::nn::Linear in{nullptr};
  torch::Tensor position, query;
  torch::nn::MultiheadAttention attention{nullptr};
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(AttentiveProbe);

/// The attentive probe's per-column R^2: trained on (x, y) per episode (tokens (n, N, D), targets
/// (n, C)), Adam on standardized inputs and targets, the epoch chosen on every fifth training
/// episode (trained on the rest), scored on (xt, yt). Deterministic for a seed.
torch::Tensor AttentiveProbeR2(const std::vector<torch::Tensor>& xs, const std::vector<torch::Tensor>& ys, const torch::Tensor& xt,
                               const torch::Tensor& yt, std::uint64_t seed, int epochs = 60);

/// EvaluateProbes with attentive probes on every token (not pooled) in place of ridge on pooled
/// features: `pretrain --probe attentive`, the equal-capacity read-out for vectors and grids.
ProbeResult EvaluateAttentiveProbes(FrozenEncoder& encoder, const ProbeSet& train, const ProbeSet& test, std::uint64_t seed);

/// What the probes could reach at best with this architecture and data: the same encoder
/// architecture and pooled linear head trained end to end, supervised, on the probe targets of
/// `train` (MSE, `epochs` passes), scored on `test` exactly like the probes. A reference, not a
/// pretraining method: it uses the labels the JEPA never sees.
ProbeResult SupervisedCeiling(const EncoderConfig& config, const ProbeSet& train, const ProbeSet& test, int epochs, std::uint64_t seed);

}  // namespace embody::adapt
