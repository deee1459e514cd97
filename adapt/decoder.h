// A pixel decoder on frozen latents, for visualization only: it shows imagined latents as images in
// the viewer. It is trained after, and apart from, the predictor and never feeds back into it (no
// pixel loss reaches stage two's predictor or the frozen encoder). Stage one's optional pixel term
// (LewmConfig::recon_weight) trains one of the same architecture with the encoder.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <filesystem>

#include <torch/torch.h>

#include "adapt/stage_two.h"

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

struct DecoderStats {
  double first_loss = 0, last_loss = 0, val_loss = 0;
};

/// Trains a decoder on (latent, frame) pairs of the training episodes, L1 in pixels, and writes
/// <out> atomically. Returns the mean L1 of the first and last 10 steps and on held-out frames.
DecoderStats TrainDecoder(const StageTwoData& data, int steps, std::uint64_t seed, const std::filesystem::path& out, bool verbose);

/// Loads a decoder written by TrainDecoder. @throws AdaptError.
LatentDecoder LoadDecoder(const std::filesystem::path& path);

}  // namespace embody::adapt
