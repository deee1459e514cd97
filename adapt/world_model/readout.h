// Reading the state out of latents: linear (ridge) read-outs fit on *true* latents of training
// episodes, applied to true, imagined and copied latents alike. They judge imagined latents by the
// state they carry (where the end effector and the objects are), not by their distance alone.
//
// Targets per frame, in columns: the end effector's image-plane position (u, v in pixels of the
// dataset's frames) and world position (x, y, z in metres) -- for every site of interest where the
// robot has several (a humanoid's hands) --, then the same five for every object.
// A point behind the camera or outside the image is out of view: its image-plane columns are not
// fit and not scored (counted in `out_of_view`).
//
// Includes torch: include it only from adapt/.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "collect/dataset.h"

namespace embody::adapt {

/// Columns per tracked point: u, v (pixels), x, y, z (metres).
constexpr int kReadoutColumns = 5;

/// Latents (n, N, D) -> read-out features: the vector itself when N = 1, else the tokens averaged to
/// a 4x4 grid (n, 16 D).
torch::Tensor ReadoutFeatures(const torch::Tensor& latents);

/// Image-plane (u, v) in pixels and in-view flags of world points (n, 3) for a camera given by
/// its extrinsics (4x4 camera-to-world, OpenGL axes, row-major: one pose, or one per point for a
/// camera that moves) and intrinsics k (3x3, row-major).
/// Returns (n, 2); *in_view receives (n) bool (in front of the camera and inside the image).
torch::Tensor ProjectToImage(const torch::Tensor& world, const std::vector<double>& extrinsics, const std::vector<double>& k, int image_size,
                             torch::Tensor* in_view);

/// Read-out targets of one episode: values (frames, P * 5) and in-view flags (frames, P), P = the
/// robot's sites of interest (ee_points: the end effector, or a humanoid's hands), then the objects.
struct ReadoutTargets {
  torch::Tensor values, in_view;
  int ee_points = 1;
  int points() const { return static_cast<int>(in_view.size(1)); }
};
/// From a dataset episode: the sites (obs/robot0_sites_pos where the robot has several, else
/// obs/robot0_eef_pos), obs/object, camera/<camera>/{extrinsics,intrinsics}.
ReadoutTargets EpisodeReadoutTargets(const collect::Dataset& ds, const std::string& demo, const std::string& camera, int image_size);

/// (copy - imagined) / (copy - floor) of mean read-out errors: 1 = the imagined latents carry the
/// future state as well as encoding the true future frame does; 0 = no better than copying the last
/// frame. Only meaningful when floor is well below copy.
double GapClosed(double copy, double imagined, double floor);

/// A ridge read-out from features to the target columns.
class LinearReadout {
 public:
  /// Fits on per-episode features and targets; the ridge strength is chosen on every fifth episode
  /// (fit on the rest). Image-plane columns of out-of-view points are left out of the fit.
  /// @throws AdaptError when there is nothing to fit.
  void Fit(const std::vector<torch::Tensor>& features, const std::vector<ReadoutTargets>& targets);
  /// Features (n, F) -> targets (n, C).
  torch::Tensor Apply(const torch::Tensor& features) const;
  double strength() const { return strength_; }
  std::int64_t out_of_view() const { return out_of_view_; }  ///< point-frames left out of the image-plane fit

 private:
  torch::Tensor mean_, std_, weights_, target_mean_;
  double strength_ = 0;
  std::int64_t out_of_view_ = 0;
};

}  // namespace embody::adapt
