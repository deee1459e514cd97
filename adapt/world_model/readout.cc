#include "adapt/world_model/readout.h"

#include <limits>

#include "adapt/core/error.h"

namespace embody::adapt {
namespace {

namespace F = torch::nn::functional;

const std::vector<double> kStrengths = {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0};

torch::Tensor Matrix(const collect::Dataset& ds, const std::string& demo, const std::string& name) {
  std::vector<hsize_t> dims;
  auto values = ds.Read<float>(demo, name, &dims);
  const int64_t cols = dims.size() > 1 ? static_cast<int64_t>(dims[1]) : 1;
  return torch::from_blob(values.data(), {static_cast<int64_t>(dims[0]), cols}, torch::kFloat32).to(torch::kFloat64);
}

// Columns of the world positions (x, y, z of every point) among the targets.
torch::Tensor WorldColumns(int points) {
  std::vector<int64_t> cols;
  for (int p = 0; p < points; ++p) {
    for (int k = 2; k < kReadoutColumns; ++k) cols.push_back(p * kReadoutColumns + k);
  }
  return torch::tensor(cols, torch::kLong);
}

}  // namespace

double GapClosed(double copy, double imagined, double floor) { return (copy - imagined) / (copy - floor); }

torch::Tensor ReadoutFeatures(const torch::Tensor& latents) {
  const auto n = latents.size(0), tokens = latents.size(1), d = latents.size(2);
  if (tokens == 1) return latents.reshape({n, d});
  const int g = static_cast<int>(std::lround(std::sqrt(static_cast<double>(tokens))));
  if (g * g != tokens) return latents.mean(1);  // not a square grid: the mean token
  const auto grid = latents.reshape({n, g, g, d}).permute({0, 3, 1, 2});
  return F::adaptive_avg_pool2d(grid, F::AdaptiveAvgPool2dFuncOptions({4, 4})).reshape({n, -1});
}

torch::Tensor ProjectToImage(const torch::Tensor& world, const std::vector<double>& e, const std::vector<double>& k, int size,
                             torch::Tensor* in_view) {
  const auto n = world.size(0);
  if (k.size() != 9 || (e.size() != 16 && e.size() != static_cast<size_t>(16 * n))) {
    throw AdaptError("camera extrinsics must be one 4x4 pose or one per point, and intrinsics 3x3");
  }
  const auto poses = torch::tensor(e, torch::kFloat64).reshape({-1, 4, 4});  // (1 or n, 4, 4)
  const auto rotation = poses.slice(1, 0, 3).slice(2, 0, 3).expand({n, 3, 3}), position = poses.slice(1, 0, 3).select(2, 3);
  // OpenGL camera: looks along -z, y up.
  const auto camera = (world.to(torch::kFloat64) - position).unsqueeze(1).bmm(rotation).squeeze(1);
  const auto depth = -camera.select(1, 2);
  const auto safe = depth.clamp_min(1e-3);
  const auto u = k[0] * camera.select(1, 0) / safe + k[2];
  const auto v = k[5] - k[4] * camera.select(1, 1) / safe;
  if (in_view) *in_view = (depth > 0.05) & (u >= 0) & (u <= size) & (v >= 0) & (v <= size);
  return torch::stack({u, v}, 1);
}

ReadoutTargets EpisodeReadoutTargets(const collect::Dataset& ds, const std::string& demo, const std::string& camera, int image_size) {
  const auto extrinsics = ds.CameraPoses(demo, camera);  // one pose per frame: a camera on the hand moves
  const auto intrinsics = ds.Read<double>(demo, collect::keys::Intrinsics(camera));
  std::vector<torch::Tensor> world;
  const bool sites = ds.HasDataset(demo, collect::keys::kSitesPos);
  const auto ee = Matrix(ds, demo, sites ? collect::keys::kSitesPos : collect::keys::kEefPos);
  for (int64_t p = 0; p + 3 <= ee.size(1); p += 3) world.push_back(ee.slice(1, p, p + 3));
  const int ee_points = static_cast<int>(world.size());
  if (ds.HasDataset(demo, collect::keys::kObject)) {
    const auto objects = Matrix(ds, demo, collect::keys::kObject);  // pos + quat per object
    for (int64_t o = 0; o + 7 <= objects.size(1); o += 7) world.push_back(objects.slice(1, o, o + 3));
  }
  std::vector<torch::Tensor> values, views;
  for (const auto& w : world) {
    torch::Tensor view;
    values.push_back(ProjectToImage(w, extrinsics, intrinsics, image_size, &view));
    values.push_back(w);
    views.push_back(view);
  }
  return {torch::cat(values, 1), torch::stack(views, 1), ee_points};
}

void LinearReadout::Fit(const std::vector<torch::Tensor>& features, const std::vector<ReadoutTargets>& targets) {
  if (features.empty() || features.size() != targets.size()) throw AdaptError("read-out: nothing to fit");
  const int points = targets.front().points();
  std::vector<torch::Tensor> xs, ys, vs;
  for (size_t i = 0; i < features.size(); ++i) {
    if (targets[i].points() != points || targets[i].ee_points != targets.front().ee_points)
      throw AdaptError("read-out: episodes track different numbers of sites or objects");
    xs.push_back(features[i].to(torch::kFloat64));
    ys.push_back(targets[i].values);
    vs.push_back(targets[i].in_view);
  }
  const auto x = torch::cat(xs), y = torch::cat(ys), view = torch::cat(vs);
  const int64_t n = x.size(0), f = x.size(1);
  mean_ = x.mean(0);
  std_ = x.std(0).clamp_min(1e-8);
  const auto xs_all = (x - mean_) / std_;
  // Image-plane targets of out-of-view points are left out: zero weight rows for those columns.
  auto row_weight = torch::ones_like(y);
  for (int p = 0; p < points; ++p)
    row_weight.slice(1, p * kReadoutColumns, p * kReadoutColumns + 2) *= view.select(1, p).to(torch::kFloat64).unsqueeze(1);
  out_of_view_ = (~view).sum().item<int64_t>();
  target_mean_ = (y * row_weight).sum(0) / row_weight.sum(0).clamp_min(1);
  const auto yc = (y - target_mean_) * row_weight;

  // Strength: chosen on the world columns (every point, every frame) of every fifth episode.
  const auto world = WorldColumns(points);
  std::vector<torch::Tensor> fit_x, hold_x, fit_y, hold_y;
  int64_t offset = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const int64_t rows = xs[i].size(0);
    (i % 5 == 4 ? hold_x : fit_x).push_back(xs_all.slice(0, offset, offset + rows));
    (i % 5 == 4 ? hold_y : fit_y).push_back(yc.slice(0, offset, offset + rows).index_select(1, world));
    offset += rows;
  }
  strength_ = 1e-2;
  if (!hold_x.empty() && !fit_x.empty()) {
    const auto fx = torch::cat(fit_x), fy = torch::cat(fit_y), hx = torch::cat(hold_x), hy = torch::cat(hold_y);
    torch::Tensor eigenvalues, q;
    std::tie(eigenvalues, q) = torch::linalg_eigh(fx.t().mm(fx), "L");
    const auto b = q.t().mm(fx.t().mm(fy)), p = hx.mm(q);
    double best = std::numeric_limits<double>::infinity();
    for (double lambda : kStrengths) {
      const auto scale = 1.0 / (eigenvalues.clamp_min(0) + lambda * fx.size(0));
      const double error = (p.mm(scale.unsqueeze(1) * b) - hy).pow(2).mean().item<double>();
      if (error < best) {
        best = error;
        strength_ = lambda;
      }
    }
  }
  // Final fit on every episode; each point's image-plane columns without that point's out-of-view rows.
  const auto gram = xs_all.t().mm(xs_all);
  const auto identity = torch::eye(f, torch::kFloat64);
  weights_ = torch::zeros({f, y.size(1)}, torch::kFloat64);
  weights_.index_copy_(1, world, torch::linalg_solve(gram + strength_ * n * identity, xs_all.t().mm(yc.index_select(1, world))));
  for (int p = 0; p < points; ++p) {
    const auto cols = torch::arange(p * kReadoutColumns, p * kReadoutColumns + 2, torch::kLong);
    const auto out = (~view.select(1, p)).nonzero().squeeze(1);
    auto g = gram;
    if (out.numel() > 0) {
      const auto xo = xs_all.index_select(0, out);
      g = gram - xo.t().mm(xo);
    }
    const int64_t rows = n - out.numel();
    if (rows == 0) continue;  // never in view: its image-plane read-out stays at the mean
    weights_.index_copy_(1, cols, torch::linalg_solve(g + strength_ * rows * identity, xs_all.t().mm(yc.index_select(1, cols))));
  }
}

torch::Tensor LinearReadout::Apply(const torch::Tensor& features) const {
  return ((features.to(torch::kFloat64) - mean_) / std_).mm(weights_) + target_mean_;
}

}  // namespace embody::adapt
