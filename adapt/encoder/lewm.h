// Stage one, LeWM's recipe (the default): an encoder trained jointly with an action-conditioned
// next-embedding predictor, so that its latents are shaped to be predictable.
//
// Clips of `rollout + 2` frames, one *model step* (`frame_skip` control steps) apart, with the
// frame_skip actions of every model step. The encoder maps each frame to one vector (the vector head);
// an MLP predicts z_{t+1} = z_t + f(z_t, z_t - z_{t-1}, actions of the step, embodiment). Loss: MSE of
// the next embedding, teacher-forced and over a `rollout`-step open-loop rollout, plus SIGReg (a test
// statistic that pushes the batch of embeddings towards an isotropic Gaussian: no collapse without
// EMA or stop-gradient), optional contrastive terms and an optional pixel term. No labels. The predictor is discarded afterwards:
// stage two trains its own, per robot, on the frozen encoder.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "adapt/core/distributed.h"
#include "adapt/encoder/decoder.h"
#include "adapt/encoder/encoder.h"
#include "adapt/encoder/video_data.h"

namespace embody::adapt {

struct LewmConfig {
  EncoderConfig encoder{64, 32, 192, "vector", 512};
  int frame_skip = 4;  ///< control steps per model step
  int rollout = 3;     ///< open-loop steps in the loss
  int predictor_width = 512;
  double sigreg_weight = 0.1;
  int sigreg_projections = 256;
  /// Weight of a within-clip contrastive term (CPC-style InfoNCE): the predicted next embedding must
  /// be nearer to the true next frame than to the clip's other frames, so the encoder must tell apart
  /// frames of one scene (the robot's motion), not only scenes (colours, camera, lighting). 0 = off.
  double contrast_weight = 0.1;
  double contrast_temperature = 0.01;  ///< in units of per-dimension squared distance
  /// Weight of a between-scene contrastive term (InfoNCE): a clip's first frame must pick, among the
  /// batch's clips, an altered view of its own last frame (colours scaled and offset per channel,
  /// shifted by up to `scene_shift` px), through a small projection head. What still tells two scenes
  /// apart is their layout: the camera's pose and where the objects stand, which the next-embedding
  /// loss alone lets the encoder drop while they stand still. 0 = off.
  double scene_weight = 0.2;
  double scene_temperature = 0.1;  ///< of the cosine similarity
  int scene_shift = 4;
  /// Earlier steps' positives kept as further negatives (MoCo's queue; entries of the anchor's own
  /// episode are left out): more scenes to tell apart than one batch holds. 0 = the batch's only
  /// (measured: a queue of 256 made the encoder carry the objects less, see the README).
  int scene_queue = 0;
  /// The between-scene term's positive from this camera of the same episode (its view of the clip's
  /// last frame, altered alike; time-contrastive networks' multi-view pairs): the camera's pose no
  /// longer tells scenes apart, so what is left to match them by is the layout, arm and objects.
  /// Empty: the anchor's own camera.
  std::string scene_camera;
  /// The positive is a view of any frame of the episode (drawn uniformly; from scene_camera when
  /// set, else the anchor's camera), not of the clip's last: the arm's pose no longer matches them
  /// either, so what is left is what stands still in the episode: the scene and the objects' layout.
  bool scene_any_time = false;
  /// Half the batch's clips (every second one) from another episode of the clip before's scene group
  /// (`simcollect --layouts-per-scene`: the same cameras, lighting, materials, dynamics and
  /// embodiment, other object layouts): each anchor's hardest negative differs from its positive only
  /// in where the objects stand, so the between-scene term is won only by carrying them.
  /// With the grid head the term is per token and needs the groups (a run's clips then come from one
  /// camera): each token of a clip's first frame must pick, among the tokens at the same place in
  /// its group mates' last frames, its own clip's, so a token over an object one layout has and the
  /// others lack must carry it.
  bool scene_groups = false;
  /// Weight of a pixel term: a small decoder (the visualization decoder's architecture) must redraw
  /// each clip's first frame from its embedding, MSE. Self-supervised (no labels), but unlike the
  /// other terms it asks for everything the frame shows, in proportion to its pixels and contrast,
  /// small objects that stand still included. The decoder is discarded with the predictor. 0 = off.
  /// With the grid head each token redraws its own patch (PatchDecoderImpl).
  double recon_weight = 0;
  /// What the pixel term redraws: "rgb" (the frame) or "highpass" (the frame minus its 5x5 local mean,
  /// scaled by 2 around 0.5: flat areas are all alike, edges and small objects are what is left).
  std::string recon_target = "rgb";
  int batch = 32;
  int steps = 2000;
  double lr = 1e-3, weight_decay = 0.05;
  int threads = 0;
  std::string device = "cpu";  ///< where training runs (torch::Device syntax: cpu, cuda, cuda:1); not part of the run's identity
  bool bf16 = false;           ///< forward passes autocast to bfloat16 (`--precision bf16`); not part of the run's identity
  bool prefetch = true;        ///< read the next batch on a thread while a step computes; not part of the run's identity
  std::uint64_t seed = 0;
  int log_every = 25, eval_every = 250;
  int clip_length() const { return rollout + 2; }
  nlohmann::json ToJson() const;  ///< the fields that define the training run (not threads or logging)
  static LewmConfig FromJson(const nlohmann::json& j);
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LewmConfig, encoder, frame_skip, rollout, predictor_width, sigreg_weight, sigreg_projections, contrast_weight,
                                   contrast_temperature, scene_weight, scene_temperature, scene_shift, scene_queue, scene_camera, scene_any_time,
                                   scene_groups, recon_weight, recon_target, batch, steps, lr, weight_decay, seed)

/// SIGReg (Epps-Pulley form, as in LeJEPA/LeWM): embeddings z (n, D) are projected on `projections`
/// random unit directions; for each, the squared distance between the empirical characteristic
/// function and the standard normal's, weighted by a Gaussian window and integrated, times n.
/// 0 for an isotropic standard Gaussian batch (up to sampling noise); large for a collapsed one.
/// With a data-parallel `group`, `z` is this rank's equal share and the statistic is the
/// global batch's (characteristic functions averaged over the ranks; the gradient reaches this share).
torch::Tensor SigReg(const torch::Tensor& z, int projections, torch::Generator* generator = nullptr, const DataParallel* group = nullptr);

/// The pixel term's target for frames (B, 3, H, W) in [0, 1]: LewmConfig::recon_target. @throws AdaptError.
torch::Tensor ReconTarget(const torch::Tensor& frames, const std::string& kind);

/// The grid head's stage-one predictor: a small conv net on the token grid. Every token gets
/// [z_t, z_t - z_{t-1}] and the step's conditioning (actions, embodiment), and predicts its own
/// change from its 5x5-token neighbourhood (two 3x3 convolutions), so what moves in the image is
/// predicted where it moves: the next-embedding loss lands on every token (V-JEPA 2.1's dense loss).
struct GridStepPredictorImpl : torch::nn::Module {
  GridStepPredictorImpl(int dim, int condition_dim, int width, int grid);
  /// z, z_prev (B, N, D) with N = grid * grid, condition (B, C) -> z_next (B, N, D).
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& z_prev, const torch::Tensor& condition);
  int grid = 8;
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(GridStepPredictor);

/// The grid's pixel term: each token redraws its own patch of the frame (a 1x1 convolution to
/// 3 x patch x patch values, then pixel shuffle), so a token can only be scored on what lies under
/// it: a small object is asked of the one token that covers it, not of a global vector.
struct PatchDecoderImpl : torch::nn::Module {
  PatchDecoderImpl(int dim, int patch_side);
  /// tokens (B, N, D), N a square -> frames (B, 3, sqrt(N) * patch, sqrt(N) * patch) in [0, 1].
  torch::Tensor forward(const torch::Tensor& tokens);
  int patch = 8;
  torch::nn::Conv2d net{nullptr};
};
TORCH_MODULE(PatchDecoder);

/// The stage-one predictor: MLP on [z_t, z_t - z_{t-1}, actions, embodiment one-hot] -> z_{t+1} - z_t.
struct StepPredictorImpl : torch::nn::Module {
  StepPredictorImpl(int dim, int condition_dim, int width);
  /// z, z_prev (B, D), condition (B, C) -> z_next (B, D).
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& z_prev, const torch::Tensor& condition);
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(StepPredictor);

struct LewmStats {
  int step = 0;
  double loss = 0, prediction = 0, sigreg = 0, contrast = 0, scene = 0, recon = 0, copy_last = 0, val_ratio = 0, clips_per_s = 0;
};

/// One batch of clips: frames (B, L, 3, H, W) float, conditions (B, L - 1, C) (the step's actions,
/// padded to the widest action space of the datasets, and the dataset's one-hot).
struct LewmBatch {
  torch::Tensor frames, conditions;
  torch::Tensor episodes;  ///< (global batch) int64: which episode of the split each clip is from (the between-scene term's queue)
  torch::Tensor views;     ///< with LewmConfig::scene_camera: each clip's last frame from that camera, (B, 3, S, S)
};

/// The between-scene term's queue of earlier positives (buffers, so that checkpoints hold it).
struct SceneQueueImpl : torch::nn::Module {
  SceneQueueImpl(int size, int dim);
  /// Appends (oldest first out) projections (B, dim) of episodes (B).
  void Push(const torch::Tensor& projections, const torch::Tensor& episodes);
  torch::Tensor entries, episodes, filled;  ///< (size, dim), (size) int64, () int64: how many are valid
};
TORCH_MODULE(SceneQueue);

/// Trains (or resumes) the encoder and predictor; the checkpoint at `out` holds the encoder where
/// FrozenEncoder::Load finds it (written atomically at every evaluation).
///
/// With a data-parallel `group` every rank runs the trainer: `config.batch` is the global batch, each
/// rank reads and computes its share, gradients are averaged, and rank 0 alone writes the checkpoint.
class LewmTrainer {
 public:
  LewmTrainer(const LewmConfig& config, const VideoData& data, const std::filesystem::path& out, bool resume, const DataParallel* group = nullptr);
  /// Runs to config.steps. @throws AdaptError on a NaN loss.
  LewmStats Train(bool verbose = true);
  /// This rank's share of a global batch drawn from `rng` (all of it in one process).
  LewmBatch Batch(const std::string& split, std::mt19937_64* rng) const;
  /// Total loss; fills it, the prediction, SIGReg and copy-last MSE of the (global) batch into *stats. SIGReg's random
  /// directions come from `direction_seed` (training uses seed and step: resumed runs draw the same).
  torch::Tensor Loss(const LewmBatch& batch, LewmStats* stats, std::uint64_t direction_seed);
  /// Held-out next-embedding MSE over copy-last's on fixed clips (< 1: the latents are predictable).
  double Validate();
  void Save() const;
  ConvEncoder& encoder() { return encoder_; }
  /// The predictor of the encoder's head (the vector's MLP or the grid's conv net).
  torch::nn::Module& Predictor() const {
    return grid_predictor_ ? static_cast<torch::nn::Module&>(*grid_predictor_.ptr()) : static_cast<torch::nn::Module&>(*predictor_.ptr());
  }

 private:
  std::vector<std::pair<std::string, torch::nn::Module*>> Modules() const;  ///< what the checkpoint holds
  /// The between-scene term's altered views of frames (B, 3, H, W): colours and position, per frame, from `seed`.
  torch::Tensor AlterViews(const torch::Tensor& frames, std::uint64_t seed) const;
  /// This rank's rows (B, d) -> the global batch's, the gradient through this rank's (see the .cc).
  torch::Tensor Gathered(const torch::Tensor& local) const;
  LewmConfig config_;
  const VideoData& data_;
  std::filesystem::path out_;
  int action_dim_ = 0, condition_dim_ = 0;
  ConvEncoder encoder_{nullptr};
  GridStepPredictor grid_predictor_{nullptr};  ///< the grid head's predictor (predictor_ is the vector head's)
  StepPredictor predictor_{nullptr};
  torch::nn::Sequential scene_head_{nullptr};  ///< the between-scene term's projection head
  SceneQueue scene_queue_{nullptr};
  /// The pixel term's decoder, with recon_weight > 0: a LatentDecoderImpl (vector) or PatchDecoderImpl (grid).
  std::shared_ptr<torch::nn::Module> recon_decoder_;
  torch::Tensor last_positives_, last_episodes_;  ///< the last Loss's, for the queue
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::mt19937_64 rng_;
  int step_ = 0;
  int scene_group_size_ = 1;  ///< clips per run of group mates in a batch (scene_groups: the data's group size)
  const DataParallel* group_ = nullptr;
  torch::Device device_ = torch::kCPU;
};

}  // namespace embody::adapt
