// A torch-free view of a trained stage-two model for the viewer: open-loop imagination of one
// episode from a chosen frame, with the errors the evaluation reports and, for the imagined latents,
// the real frame whose latents are nearest (retrieval) and, with a decoder.pt in the model folder, the
// imagined latents decoded to pixels (for visualization only).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace embody::adapt {

struct Imagination {
  int start = 0;                    ///< first imagined frame (context = frames start-k .. start-1)
  int horizon = 0;                  ///< imagined frames: start .. start + horizon - 1
  int frame_skip = 1;               ///< control steps per model step; frames between model steps show the nearest one
  double seconds_per_frame = 0.05;  ///< 1 / the dataset's control rate
  /// The state read-out (a ridge fit on true latents of training episodes): per imagined frame, the end
  /// effector's image position (u, v pixels of the recorded frame) read from the imagined latents, and
  /// its true position; image_size is the recorded frame's side.
  std::vector<std::array<double, 2>> readout_ee_uv, true_ee_uv;
  int image_size = 0;
  std::vector<std::vector<double>> proprio;          ///< (horizon, P) predicted by the dynamics model
  std::vector<double> latent_l1, copy_last_l1;       ///< per imagined frame, against the true latents
  std::vector<double> joint_error_rad, ee_error_cm;  ///< dynamics model against MuJoCo truth
  std::vector<std::string> nearest_demo;             ///< per imagined frame: where its nearest real frame is
  std::vector<int> nearest_frame;
  /// Per imagined frame, the predicted latents decoded to RGB (S*S*3) when the model folder holds a
  /// decoder.pt (adapt --train-decoder); empty otherwise.
  std::vector<std::vector<std::uint8_t>> decoded;
  int decoded_size = 0;
};

class Imaginer {
 public:
  virtual ~Imaginer() = default;
  /// Opens <model>/model.pt for `dataset`'s embodiment, with the latent cache of `encoder` (built if
  /// missing). @throws std::runtime_error (AdaptError) with a clear message: no such model, the model
  /// is for another embodiment, encoder mismatch.
  static std::unique_ptr<Imaginer> Open(const std::filesystem::path& model, const std::filesystem::path& dataset,
                                        const std::filesystem::path& encoder, const std::string& camera = "camera0");
  virtual const std::string& embodiment() const = 0;
  virtual int joints() const = 0;
  /// Imagines frames [start, start + horizon) of `demo` from the `context` frames before `start`,
  /// with the recorded actions. start >= context; frames past the episode's end are cut off.
  /// Retrieval searches the episode itself and up to `retrieval_episodes` other episodes.
  virtual Imagination Imagine(const std::string& demo, int start, int context, int horizon, int retrieval_episodes = 8) = 0;
};

}  // namespace embody::adapt
