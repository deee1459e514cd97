// The proprio vector every stage reads: what EpisodeRunner::Proprio returns, what stage two builds
// from a dataset's obs arrays and what the world model's dynamics predicts. One layout, one place.
#pragma once

#include <cstddef>
#include <vector>

namespace embody::collect {

/// [joint_pos J, joint_vel J, ee_pos 3, ee_quat 4 (w x y z), gripper finger qpos G]: where each part
/// starts, for J controlled joints and G gripper joints.
struct ProprioLayout {
  int joints = 0;   ///< J
  int gripper = 0;  ///< G
  int joint_pos() const { return 0; }
  int joint_vel() const { return joints; }
  int ee_pos() const { return 2 * joints; }
  int ee_quat() const { return 2 * joints + 3; }
  int gripper_pos() const { return 2 * joints + 7; }
  int size() const { return 2 * joints + 7 + gripper; }
};

/// Concatenates the parts of one step in the layout's order (each a row of its per-step array).
inline std::vector<float> ProprioRow(const ProprioLayout& l, const float* joint_pos, const float* joint_vel, const float* ee_pos,
                                     const float* ee_quat, const float* gripper) {
  std::vector<float> p;
  p.reserve(l.size());
  p.insert(p.end(), joint_pos, joint_pos + l.joints);
  p.insert(p.end(), joint_vel, joint_vel + l.joints);
  p.insert(p.end(), ee_pos, ee_pos + 3);
  p.insert(p.end(), ee_quat, ee_quat + 4);
  if (l.gripper > 0) p.insert(p.end(), gripper, gripper + l.gripper);
  return p;
}

}  // namespace embody::collect
