// One recorded episode as plain data: what EpisodeRunner records and the dataset writer stores.
// Simulator-free, so readers and writers of the format need not include the episode runner.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace embody::collect {

struct EpisodeData {
  std::int64_t index = 0;
  std::uint64_t seed = 0;
  int attempts = 1;  ///< 1 + number of unstable draws discarded
  std::string task;
  bool success = false;  ///< the task's goal held at some step (rewards: whether it holds at each step)
  double noise = 0;
  nlohmann::json draw;  ///< the randomization draw (Draw::ToJson)
  int steps = 0, image_size = 0, num_cameras = 0;
  int action_dim = 0, num_joints = 0, state_dim = 0, object_dim = 0, gripper_dim = 0;
  std::vector<std::vector<std::uint8_t>> images;   ///< per camera: steps x H x W x 3
  std::vector<std::array<double, 9>> intrinsics;   ///< per camera, row-major 3x3
  std::vector<std::array<double, 16>> extrinsics;  ///< per camera, camera-to-world 4x4 (sim::Pose)
  /// The camera on the hand (simcollect --eye-in-hand; empty without): its frames (steps x H x W x 3),
  /// its intrinsics and, since it moves with the hand, its pose at every frame (steps x 16).
  std::vector<std::uint8_t> eye_in_hand_images;
  std::array<double, 9> eye_in_hand_intrinsics{};
  std::vector<double> eye_in_hand_extrinsics;
  std::vector<float> actions, joint_targets, joint_pos, joint_vel, eef_pos, eef_quat, gripper_qpos, object;
  /// Embodiments with several sites of interest (a humanoid's hands): every site's position per step
  /// (steps x 3 * sites, in site_names' order; the first is eef_pos's site). Empty for one site.
  std::vector<float> sites_pos;
  std::vector<std::string> site_names;
  std::vector<double> states;
  std::vector<float> rewards;
  std::vector<std::int32_t> dones;
  /// Extra attributes of the episode group (numbers stay numbers, strings strings), e.g. a surprise
  /// clip's violation; and extra per-step series written as 1-D datasets under the group.
  nlohmann::json extra_attrs = nlohmann::json::object();
  std::map<std::string, std::vector<float>> extra_series;
};

}  // namespace embody::collect
