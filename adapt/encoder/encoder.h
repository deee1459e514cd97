// Stage one's video encoder and the frozen-encoder interface stage two uses.
//
// An encoder maps frames (B, T, 3, H, W), float in [0, 1], to latent tokens (B, T, N, D) on a
// spatial grid (N = grid * grid tokens per frame), so positions of the robot and objects survive.
// Ours is a small ConvNet (ConvEncoder). Any TorchScript module whose forward has that signature can
// stand in for it (FrozenEncoder::Load); see the README for exporting one from Python.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <filesystem>
#include <string>

#include <torch/script.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

namespace embody::adapt {

struct EncoderConfig {
  int image_size = 64;  ///< input frames are image_size x image_size
  int width = 32;       ///< channels of the first conv layer (doubles twice)
  int dim = 128;        ///< D, the latent size per token
  /// "grid": (H/8)^2 tokens of D (the masked-latent JEPA's); "vector": one token of D per frame, the
  /// conv features flattened through an MLP projector with BatchNorm (LeWM's compact latent).
  std::string head = "grid";
  int hidden = 512;  ///< the vector head's projector width
  /// Vector head only: the last 2K of the D numbers are the expected image coordinates (x then y, in
  /// [-1, 1]) of K spatial-softmax keypoints on the stride-4 features (0 = none), so that where a
  /// small thing a map fires on stands is linear in the latent.
  int keypoints = 0;
  /// Tokens per side: the encoder downsamples by 8.
  int grid() const { return image_size / 8; }
  int tokens() const { return head == "vector" ? 1 : grid() * grid(); }
  nlohmann::json ToJson() const;
  /// Checkpoints from before the vector head have no "head": they are grid encoders (see from_json).
  static EncoderConfig FromJson(const nlohmann::json& j);
};
/// JSON keys = field names, also inside the stage-one configs that hold one (LewmConfig, JepaConfig):
/// reading fills what older checkpoints lack (head "grid", hidden 512, keypoints 0), so that
/// `pretrain --resume` reads them too.
void to_json(nlohmann::json& j, const EncoderConfig& c);
void from_json(const nlohmann::json& j, EncoderConfig& c);

/// Four conv stages (stride 2, 2, 2, 1) with GroupNorm and GELU, applied to every frame; with the
/// vector head, a projector (flattened features -> hidden -> BatchNorm -> GELU -> D) after them.
struct ConvEncoderImpl : torch::nn::Module {
  explicit ConvEncoderImpl(const EncoderConfig& config);
  /// (B, T, 3, H, W) in [0, 1] -> (B, T, N, D) (N = 1 with the vector head).
  torch::Tensor forward(const torch::Tensor& frames);
  EncoderConfig config;
  torch::nn::Sequential net{nullptr};
  torch::nn::Sequential projector{nullptr};  ///< vector head only
  torch::nn::Conv2d keypoint_maps{nullptr};  ///< config.keypoints > 0 only
  /// Set while data-parallel training: the projector's batch norm then uses the global batch's statistics.
  const class DataParallel* group = nullptr;
};
TORCH_MODULE(ConvEncoder);

/// uint8 frames (B, T, H, W, 3) -> DefaultFloat() (B, T, 3, H, W) in [0, 1].
torch::Tensor FramesToInput(const torch::Tensor& frames_uint8);

/// The floating type modules are built with and data enters as (float32 unless `--precision float64`).
inline torch::ScalarType DefaultFloat() { return torch::typeMetaToScalarType(torch::get_default_dtype()); }

/// A short stable hash (hex) of a file's bytes: identifies an encoder for the latent cache.
std::string FileHash(const std::filesystem::path& path);

/// The frozen encoder of stage two: Embody's own checkpoint (the EMA target encoder of `pretrain`)
/// or a TorchScript module. Always in eval mode; Encode runs without gradients.
class FrozenEncoder {
 public:
  /// `image_size` 0 means: ours knows its size; a TorchScript module's comes from its `image_size`
  /// attribute if it has one, else from `default_image_size`.
  /// @throws std::runtime_error (AdaptError) naming the file and what is wrong with it.
  static FrozenEncoder Load(const std::filesystem::path& path, int default_image_size = 0);
  /// A freshly initialized (random) encoder of our architecture, for baselines.
  static FrozenEncoder Random(const EncoderConfig& config, std::uint64_t seed);

  /// (B, T, 3, H, W) float -> (B, T, N, D). @throws AdaptError when the input size or the output
  /// rank is not what the interface says.
  torch::Tensor Encode(const torch::Tensor& frames);
  /// Runs the encoder on `device` from now on (Encode moves the frames there and the tokens back).
  void To(const torch::Device& device);

  int image_size() const { return image_size_; }
  const std::string& hash() const { return hash_; }
  /// @throws AdaptError unless this is the encoder `model_hash` names (the one a model was trained on).
  void RequireHash(const std::string& model_hash) const;
  const std::string& kind() const { return kind_; }  ///< "embody" or "torchscript"

 private:
  ConvEncoder ours_{nullptr};
  std::shared_ptr<torch::jit::Module> script_;
  int image_size_ = 0;
  torch::Device device_ = torch::kCPU;
  std::string hash_, kind_;
  std::string source_;
};

}  // namespace embody::adapt
