// A pixel decoder on frozen latents, for visualization only: it shows imagined latents as images in
// the viewer. It is trained after, and apart from, the predictor and never feeds back into it (no
// pixel loss reaches stage two's predictor or the frozen encoder). Stage one's optional pixel term
// (LewmConfig::recon_weight) trains one of the same architecture with the encoder.
//
// The module and its file live here (stage one's pixel term uses the module); training it on a world
// model's data is adapt/world_model/decoder_training.h.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace embody::adapt {

/// Tokens (B, N, D) on a sqrt(N) grid -> images (B, 3, S, S) in [0, 1]: a 1x1 conv, then nearest
/// upsampling x2 + 3x3 conv + GELU until S, then a 3x3 conv to RGB.
struct LatentDecoderImpl : torch::nn::Module {
  LatentDecoderImpl(int tokens, int latent_dim, int image_size, int width = 32);
  torch::Tensor forward(const torch::Tensor& tokens);
  int grid = 0, image_size = 0;
  torch::nn::Sequential net{nullptr};
  torch::nn::Linear spread{nullptr};  ///< one-token latents only: vector -> grid
};
TORCH_MODULE(LatentDecoder);

/// Writes `decoder` (with what it decodes: `tokens` x `latent_dim` latents of encoder `encoder_hash`
/// to `image_size` px) as decoder.pt, atomically: the one writer of the format LoadDecoder reads.
void SaveDecoder(LatentDecoder& decoder, int tokens, int latent_dim, int image_size, const std::string& encoder_hash,
                 const std::filesystem::path& out);

/// Loads a decoder written by SaveDecoder. @throws AdaptError.
LatentDecoder LoadDecoder(const std::filesystem::path& path);

}  // namespace embody::adapt
