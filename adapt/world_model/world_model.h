// Stage two's models: per-embodiment robot dynamics and the action-conditioned interaction predictor
// on top of frozen encoder latents (V-JEPA 2-AC's recipe, scaled to a CPU).
//
// Dynamics model (one per embodiment): proprio_t + action_t -> proprio_{t+1}, an MLP on normalized
// values predicting the normalized change.
//
// Interaction predictor: a block-causal transformer over a window of at most `context` frames. Frame
// t contributes its N latent tokens plus four conditioning tokens: the action a_t (+ the embodiment
// token), the joint state (per-embodiment adapters), the end-effector pose and gripper (shared by all
// arms: the same quantities on every robot) and the camera extrinsics (shared). A token of frame t
// attends to every token of frames <= t and to nothing later; the outputs at frame t's latent tokens
// predict the latents of frame t+1 as a residual on frame t's (zero-initialized, so an untrained
// predictor is exactly the copy-last-frame baseline). The trunk (token projections, positions,
// transformer, output) is shared by all embodiments; a new robot needs only its adapters.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <array>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "collect/proprio.h"

namespace embody::adapt {

/// What an embodiment's vectors look like (from its dataset).
struct EmbodimentSpec {
  std::string name;
  int joints = 0;   ///< J: proprio = [joint_pos J, joint_vel J, ee_pos 3, ee_quat 4, gripper G]
  int gripper = 0;  ///< G
  int action_dim = 0;
  std::string action_kind;  ///< names of the action dims joined; equal kinds share an action adapter on transfer
  collect::ProprioLayout layout() const { return {joints, gripper}; }
  int proprio_dim() const { return layout().size(); }
  nlohmann::json ToJson() const;
  static EmbodimentSpec FromJson(const nlohmann::json& j);
};
/// JSON keys = field names (one list for writing and reading; a missing key is an error).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EmbodimentSpec, name, joints, gripper, action_dim, action_kind)

/// Whether a model camera is the one on the hand (robomimic's robot0_eye_in_hand), not an agent view.
bool IsHandCamera(const std::string& camera);

struct PredictorConfig {
  int latent_dim = 192;  ///< D of the frozen encoder (adapt sets it from the latent cache)
  int tokens = 1;        ///< N latent tokens per frame (likewise)
  int dim = 96;          ///< transformer width
  int depth = 3, heads = 4;
  int context = 2;  ///< model steps the predictor sees at once (older ones slide out)
  /// Control steps per model step: the predictor maps frame t to frame t + frame_skip, conditioned on
  /// the frame_skip actions between them (concatenated). Models from before it have 1.
  int frame_skip = 4;
  /// The cameras whose frames the model reads, in order: a frame's N tokens are each camera's
  /// encoder tokens in turn (tokens / cameras per view), its camera token sees every camera's
  /// extrinsics (12 numbers each). Models from before it read camera0 alone.
  std::vector<std::string> cameras = {"camera0"};
  int views() const { return static_cast<int>(cameras.size()); }
  /// @throws AdaptError unless the cameras are camera0, camera1, ... in that order, then at most the
  /// hand's robot0_eye_in_hand (the cameras a scene renders for the model; `who`, e.g. "plan
  /// renders", starts the message).
  void RequireNumberedCameras(const std::string& who) const;
  /// The agent views among `cameras` (all but the hand's).
  int agent_views() const;
  /// Whether the last camera is the hand's.
  bool reads_hand() const { return !cameras.empty() && IsHandCamera(cameras.back()); }
  nlohmann::json ToJson() const;
  /// A config without frame_skip (a model from before it) loads with frame_skip 1, said on stderr;
  /// one without cameras reads camera0.
  static PredictorConfig FromJson(const nlohmann::json& j);
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PredictorConfig, latent_dim, tokens, dim, depth, heads, context, frame_skip, cameras)

/// Per-embodiment dynamics: MLP on [normalized proprio, action] -> normalized proprio change.
struct DynamicsModelImpl : torch::nn::Module {
  DynamicsModelImpl(int proprio_dim, int action_dim, int hidden = 256);
  /// (..., P) normalized proprio, (..., A) action -> (..., P) normalized change.
  torch::Tensor forward(const torch::Tensor& proprio, const torch::Tensor& action);
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(DynamicsModel);

/// The small per-embodiment parts of the interaction predictor.
struct AdapterImpl : torch::nn::Module {
  AdapterImpl(const EmbodimentSpec& spec, int dim, int frame_skip);
  torch::nn::Linear action{nullptr}, joints{nullptr};
  torch::Tensor token;  ///< the embodiment token, added to the action token
};
TORCH_MODULE(Adapter);

/// The shared trunk.
struct TrunkImpl : torch::nn::Module {
  explicit TrunkImpl(const PredictorConfig& config);
  PredictorConfig config;
  torch::nn::Linear latent_in{nullptr}, ee_in{nullptr}, camera_in{nullptr}, out{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::Tensor spatial_pos, frame_pos, kind_pos;
  /// Typical size of a frame-to-frame latent change (buffer): the output is a residual in these
  /// units, so the output layer works at O(1) while changes are a few percent of the latents.
  torch::Tensor delta_scale;
  std::vector<torch::nn::TransformerEncoderLayer> layers;
};
TORCH_MODULE(Trunk);

/// Normalization of one embodiment's proprio and proprio changes (from training episodes).
struct Normalizer {
  torch::Tensor mean, std, delta_mean, delta_std;  ///< (P) each
  torch::Tensor Normalize(const torch::Tensor& p) const { return (p - mean) / std; }
  torch::Tensor Denormalize(const torch::Tensor& p) const { return p * std + mean; }
};

/// Everything stage two learns, for one or more embodiments, with save/load.
class WorldModel {
 public:
  WorldModel() = default;
  explicit WorldModel(const PredictorConfig& config);

  /// Adds an embodiment (fresh adapters and dynamics). No-op if present with the same spec.
  /// @throws AdaptError if present with another spec.
  void AddEmbodiment(const EmbodimentSpec& spec, const Normalizer& norm);
  bool Has(const std::string& embodiment) const { return specs_.count(embodiment) > 0; }
  /// @throws AdaptError "the world model is for <known>, not <embodiment> (adapt --embodiment ... first)".
  void RequireEmbodiment(const std::string& embodiment) const;
  const EmbodimentSpec& spec(const std::string& embodiment) const;
  Normalizer& normalizer(const std::string& embodiment);
  std::vector<std::string> embodiments() const;
  const PredictorConfig& config() const { return config_; }
  /// Sets the residual's unit (mean |z_{t+1} - z_t| of the training data).
  void SetLatentDeltaScale(double scale);
  double latent_delta_scale() const;

  /// Trunk + adapters + dynamics of one embodiment (what an optimizer trains). With freeze_trunk,
  /// only the per-embodiment parts.
  std::vector<torch::Tensor> Parameters(const std::string& embodiment, bool freeze_trunk) const;
  /// The interaction predictor's parameters (trunk unless frozen, adapters) and the dynamics model's.
  std::vector<torch::Tensor> PredictorParameters(const std::string& embodiment, bool freeze_trunk) const;
  std::vector<torch::Tensor> DynamicsParameters(const std::string& embodiment) const;
  /// The trunk's parameters alone (shared by every embodiment).
  std::vector<torch::Tensor> TrunkParameters() const;
  void Train(bool on);
  /// Moves every part (trunk, adapters, dynamics, normalizers) to `device`; embodiments added later go
  /// there too. Inputs must be on device() (the planners and the surprise scorer move theirs).
  void To(const torch::Device& device);
  const torch::Device& device() const { return device_; }

  /// One dynamics step in physical units: proprio (B, P), action (B, A) -> next proprio (B, P).
  torch::Tensor StepDynamics(const std::string& embodiment, const torch::Tensor& proprio, const torch::Tensor& action);
  /// Normalized-change prediction (training).
  torch::Tensor DynamicsDelta(const std::string& embodiment, const torch::Tensor& proprio_norm, const torch::Tensor& action);

  /// Block-causal prediction over a window of model steps: latents (B, T, N, D), proprio (B, T, P) in
  /// physical units, actions (B, T, k A) (the k = frame_skip actions of each model step), camera
  /// (B, 12) -> predicted latents of model steps 1..T (B, T, N, D). T must be <= config().context.
  torch::Tensor Predict(const std::string& embodiment, const torch::Tensor& latents, const torch::Tensor& proprio, const torch::Tensor& actions,
                        const torch::Tensor& camera);

  /// Open-loop rollout in model steps: c true frames (B, c, ...), then `horizon` model steps with the
  /// given actions (B, c + horizon - 1, k A covering every input frame), each prediction fed back as
  /// input; proprio of predicted frames comes from the dynamics model (k control steps per model
  /// step). Returns predicted latents (B, H, N, D) and, in *proprio_out, predicted proprio (B, H, P).
  torch::Tensor Rollout(const std::string& embodiment, const torch::Tensor& latents, const torch::Tensor& proprio, const torch::Tensor& actions,
                        const torch::Tensor& camera, int horizon, torch::Tensor* proprio_out = nullptr);

  /// Copies the trunk (and adapters, dynamics and normalizers of embodiments present in both) from
  /// `other`. Returns what was copied, for the log. @throws AdaptError when the trunks differ in shape.
  std::vector<std::string> InitFrom(const WorldModel& other, const std::string& embodiment);

  void Save(torch::serialize::OutputArchive& archive) const;
  /// @throws AdaptError when the archive is not a stage-two model.
  static WorldModel Load(torch::serialize::InputArchive& archive);

  /// The parts, read-only (the TorchScript export reads their weights).
  const Trunk& trunk() const { return trunk_; }
  const Adapter& adapter(const std::string& embodiment) const { return adapters_.at(spec(embodiment).name); }
  const DynamicsModel& dynamics(const std::string& embodiment) const { return dynamics_.at(spec(embodiment).name); }
  const Normalizer& normalizer(const std::string& embodiment) const { return norms_.at(spec(embodiment).name); }

 private:
  PredictorConfig config_;
  Trunk trunk_{nullptr};
  std::map<std::string, EmbodimentSpec> specs_;
  std::map<std::string, Adapter> adapters_;
  std::map<std::string, DynamicsModel> dynamics_;
  std::map<std::string, Normalizer> norms_;
  torch::Device device_ = torch::kCPU;
};

/// Parts of proprio tensors (..., P) in the layout of `spec`: joint positions (..., J), ee position (..., 3).
inline torch::Tensor JointPositionsOf(const torch::Tensor& proprio, const EmbodimentSpec& spec) {
  return proprio.slice(-1, spec.layout().joint_pos(), spec.layout().joint_pos() + spec.joints);
}
inline torch::Tensor EePositionOf(const torch::Tensor& proprio, const EmbodimentSpec& spec) {
  return proprio.slice(-1, spec.layout().ee_pos(), spec.layout().ee_pos() + 3);
}

/// Camera extrinsics (4x4 camera-to-world, row-major) as the 12 numbers the camera token sees; several
/// cameras' extrinsics one after the other (16 numbers each) give 12 per camera, concatenated.
torch::Tensor CameraFeatures(const std::vector<double>& extrinsics);

/// A camera that moves with the hand as the camera token sees it: its pose (4x4 camera-to-world,
/// row-major) taken into the frame of the end effector at the same moment (its world position and
/// quaternion w x y z), 16 numbers: where the camera sits on the hand, the same at every frame of a
/// rigid mount (the proprio says where the hand is). @throws AdaptError unless 16 numbers.
std::vector<double> PoseOnHand(const std::vector<double>& camera_pose, const std::array<double, 3>& ee_pos, const std::array<double, 4>& ee_quat);

/// Latent L1 error per horizon: mean |a - b| over tokens and dims, (B, H, N, D) -> (H).
torch::Tensor LatentL1(const torch::Tensor& a, const torch::Tensor& b);

/// model.pt, written and read here only: the model, the encoder it belongs to, and `info`.
/// Writes a model file (atomically) with the encoder it belongs to.
void SaveWorldModel(const WorldModel& model, const std::string& encoder_hash, const nlohmann::json& info, const std::filesystem::path& path);
/// Loads <dir>/model.pt (or a file). encoder_hash receives the encoder the model was trained on.
/// @throws AdaptError.
WorldModel LoadWorldModel(const std::filesystem::path& path, std::string* encoder_hash = nullptr, nlohmann::json* info = nullptr);

}  // namespace embody::adapt
