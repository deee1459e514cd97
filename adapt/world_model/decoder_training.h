// Training the visualization decoder (adapt/encoder/decoder.h) on a world model's data: (latent,
// frame) pairs of the training episodes. It never feeds back into the predictor.
//
// Includes torch: include it only from adapt/.
#pragma once

#include <cstdint>
#include <filesystem>

#include "adapt/encoder/decoder.h"
#include "adapt/world_model/stage_two.h"

namespace embody::adapt {

struct DecoderStats {
  double first_loss = 0, last_loss = 0, val_loss = 0;
};

/// Trains a decoder on (latent, frame) pairs of the training episodes, L1 in pixels, and writes
/// <out> atomically (SaveDecoder). Returns the mean L1 of the first and last 10 steps and on held-out frames.
DecoderStats TrainDecoder(const StageTwoData& data, int steps, std::uint64_t seed, const std::filesystem::path& out, bool verbose);

}  // namespace embody::adapt
