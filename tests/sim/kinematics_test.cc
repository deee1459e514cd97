// Tests that the franka and ur5 models follow their published Denavit-Hartenberg kinematics:
// forward kinematics in MuJoCo against an independent DH computation written here.
#include <array>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "robots/embodiment.h"
#include "sim/controller.h"
#include "sim/world.h"

namespace embody::sim {
namespace {

using Mat4 = std::array<double, 16>;

Mat4 Multiply(const Mat4& a, const Mat4& b) {
  Mat4 c{};
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 4; ++k)
      for (int col = 0; col < 4; ++col) c[4 * r + col] += a[4 * r + k] * b[4 * k + col];
  return c;
}
Mat4 RotX(double t) { return {1, 0, 0, 0, 0, std::cos(t), -std::sin(t), 0, 0, std::sin(t), std::cos(t), 0, 0, 0, 0, 1}; }
Mat4 RotZ(double t) { return {std::cos(t), -std::sin(t), 0, 0, std::sin(t), std::cos(t), 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}; }
Mat4 Trans(double x, double y, double z) { return {1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1}; }

// Franka, modified (Craig) DH: T_i = RotX(alpha_{i-1}) TransX(a_{i-1}) RotZ(theta_i) TransZ(d_i).
Mat4 FrankaFlange(const std::vector<double>& q) {
  const double pi = M_PI;
  const double a[7] = {0, 0, 0, 0.0825, -0.0825, 0, 0.088};
  const double d[7] = {0.333, 0, 0.316, 0, 0.384, 0, 0};
  const double alpha[7] = {0, -pi / 2, pi / 2, pi / 2, -pi / 2, pi / 2, pi / 2};
  Mat4 t = Trans(0, 0, 0);
  for (int i = 0; i < 7; ++i) {
    t = Multiply(t, Multiply(Multiply(RotX(alpha[i]), Trans(a[i], 0, 0)), Multiply(RotZ(q[i]), Trans(0, 0, d[i]))));
  }
  return Multiply(t, Trans(0, 0, 0.107));
}

// UR5, standard DH: T_i = RotZ(theta_i) TransZ(d_i) TransX(a_i) RotX(alpha_i).
Mat4 Ur5Flange(const std::vector<double>& q) {
  const double pi = M_PI;
  const double a[6] = {0, -0.425, -0.39225, 0, 0, 0};
  const double d[6] = {0.089159, 0, 0, 0.10915, 0.09465, 0.0823};
  const double alpha[6] = {pi / 2, 0, 0, pi / 2, -pi / 2, 0};
  Mat4 t = Trans(0, 0, 0);
  for (int i = 0; i < 6; ++i) {
    t = Multiply(t, Multiply(Multiply(RotZ(q[i]), Trans(0, 0, d[i])), Multiply(Trans(a[i], 0, 0), RotX(alpha[i]))));
  }
  return t;
}

// Compares the MuJoCo flange site with the DH flange at 20 random configurations within limits.
void ExpectModelMatchesDh(const std::string& robot, const std::string& flange_site, Mat4 (*dh)(const std::vector<double>&)) {
  const robots::Embodiment e = robots::FindEmbodiment(robot);
  World world = World::FromFile(e.mjcf);
  const mjModel* m = world.model();
  const int site = RequireId(m, mjOBJ_SITE, flange_site);
  const int base = RequireId(m, mjOBJ_BODY, e.base_body);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> q;
    for (const auto& name : e.joints) {
      const int j = RequireId(m, mjOBJ_JOINT, name);
      const double lo = std::max(m->jnt_range[2 * j], -M_PI), hi = std::min(m->jnt_range[2 * j + 1], M_PI);
      q.push_back(std::uniform_real_distribution<double>(lo, hi)(rng));
      world.mutable_data()->qpos[m->jnt_qposadr[j]] = q.back();
    }
    world.Forward();
    const mjData* d = world.data();
    // Site position in the base body's frame: R_base^T (p - x_base).
    double rel[3], local[3];
    for (int i = 0; i < 3; ++i) rel[i] = d->site_xpos[3 * site + i] - d->xpos[3 * base + i];
    mju_mulMatTVec(local, d->xmat + 9 * base, rel, 3, 3);
    const Mat4 t = dh(q);
    EXPECT_NEAR(t[3], local[0], 1e-3) << robot << " trial " << trial;
    EXPECT_NEAR(t[7], local[1], 1e-3) << robot << " trial " << trial;
    EXPECT_NEAR(t[11], local[2], 1e-3) << robot << " trial " << trial;
    // The flange's z axis (approach direction) agrees too.
    double zaxis_world[3] = {d->site_xmat[9 * site + 2], d->site_xmat[9 * site + 5], d->site_xmat[9 * site + 8]};
    double zaxis[3];
    mju_mulMatTVec(zaxis, d->xmat + 9 * base, zaxis_world, 3, 3);
    EXPECT_NEAR(t[2], zaxis[0], 1e-3);
    EXPECT_NEAR(t[6], zaxis[1], 1e-3);
    EXPECT_NEAR(t[10], zaxis[2], 1e-3);
  }
}

// Tests that the franka model's flange follows the published modified-DH parameters within 1 mm.
TEST(KinematicsTest, FrankaMatchesModifiedDh) { ExpectModelMatchesDh("franka", "franka_flange", FrankaFlange); }

// Tests that the ur5 model's flange follows the published standard-DH parameters within 1 mm.
TEST(KinematicsTest, Ur5MatchesStandardDh) { ExpectModelMatchesDh("ur5", "ur5_flange", Ur5Flange); }

}  // namespace
}  // namespace embody::sim
