#include "collect/policies.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace embody::collect {
namespace {

using Vec3 = std::array<double, 3>;
using Quat = std::array<double, 4>;
constexpr double kPi = 3.14159265358979323846;
constexpr double kGain = 0.6;
// Height above the table at which the hand travels clear of every object (tallest: the cup, 11 cm).
constexpr double kSafeHeight = 0.19;

double Clamp1(double x) { return std::clamp(x, -1.0, 1.0); }
double Distance(const Vec3& a, const Vec3& b) { return std::hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]); }

double BodyYaw(const sim::World& w, int body) {
  const double* r = w.data()->xmat + 9 * body;
  return std::atan2(r[3], r[0]);
}

Quat YawRotated(const Quat& q, double yaw) {
  const double r[4] = {std::cos(yaw / 2), 0, 0, std::sin(yaw / 2)};
  Quat out;
  mju_mulQuat(out.data(), r, q.data());
  return out;
}

// An object that does not roll away when pushed or grasped (not a sphere), if there is one.
int PickNonRolling(const SceneRefs& s, const sim::World& w, Rng* rng) {
  std::vector<int> candidates;
  for (int b : s.object_bodies) {
    if (w.model()->geom_type[w.model()->body_geomadr[b]] != mjGEOM_SPHERE) candidates.push_back(b);
  }
  if (candidates.empty()) candidates = s.object_bodies;
  return candidates[rng->Int(0, static_cast<int>(candidates.size()) - 1)];
}

// Shared machinery of the arm policies: a P-controller toward an ee pose, in normalized units.
class ArmPolicy : public Policy {
 public:
  ArmPolicy(const sim::RobotController& c, const SceneRefs& scene, const sim::World& w)
      : controller_(c), scene_(scene), down_(sim::GetSitePose(w.data(), c.ee_site()).quat) {}

 protected:
  Vec3 Ee(const sim::World& w) const { return sim::GetSitePose(w.data(), controller_.ee_site()).pos; }
  Quat EeQuat(const sim::World& w) const { return sim::GetSitePose(w.data(), controller_.ee_site()).quat; }

  // Action that moves toward `target` (speed <= max_speed of the full scale) with orientation `quat`.
  std::vector<double> Toward(const sim::World& w, const Vec3& target, const Quat& quat, double gripper, double max_speed = 1.0) const {
    const auto& scale = controller_.embodiment().action_scale;
    const Vec3 ee = Ee(w);
    const Vec3 rot = sim::OrientationError(quat, EeQuat(w));
    std::vector<double> a(7);
    // Gains below 1 cover only part of the error per step: the arm lags its targets, and full
    // corrections overshoot and oscillate.
    for (int k = 0; k < 3; ++k) a[k] = std::clamp(kGain * (target[k] - ee[k]) / scale.position, -max_speed, max_speed);
    for (int k = 0; k < 3; ++k) a[3 + k] = Clamp1(kGain * rot[k] / scale.rotation);
    a[6] = gripper;
    return a;
  }
  // `target`, but at the current height while the hand is more than `tolerance` off it horizontally.
  Vec3 CentredDescent(const sim::World& w, const Vec3& target, double tolerance = 0.02) const {
    const Vec3 ee = Ee(w);
    const bool centred = std::hypot(target[0] - ee[0], target[1] - ee[1]) < tolerance;
    return {target[0], target[1], centred ? target[2] : std::max(target[2], ee[2])};
  }
  bool Near(const sim::World& w, const Vec3& target, double tolerance) const { return Distance(Ee(w), target) < tolerance; }

  const sim::RobotController& controller_;
  SceneRefs scene_;
  Quat down_;  // the home orientation: gripper pointing down
};

// Reach: the end effector visits random waypoints above the table; the gripper toggles at each.
class ReachPolicy : public ArmPolicy {
 public:
  ReachPolicy(const sim::RobotController& c, const SceneRefs& s, const sim::World& w, Rng* rng) : ArmPolicy(c, s, w) {
    const int n = rng->Int(2, 4);
    for (int i = 0; i < n; ++i) {
      waypoints_.push_back({rng->Uniform(0.3, 0.65), rng->Uniform(-0.3, 0.3), s.table_top + rng->Uniform(0.08, 0.4)});
    }
  }
  std::vector<double> Act(const sim::World& w) override {
    if (next_ < waypoints_.size() && Near(w, waypoints_[next_], 0.02)) {
      ++next_;
      gripper_ = -gripper_;
    }
    const Vec3 target = waypoints_[std::min(next_, waypoints_.size() - 1)];
    return Toward(w, target, down_, gripper_);
  }
  bool Success(const sim::World& w) const override { return next_ + 1 >= waypoints_.size() && Near(w, waypoints_.back(), 0.03); }

 private:
  std::vector<Vec3> waypoints_;
  size_t next_ = 0;
  double gripper_ = -1;
};

// Push: closed fingers slide an object along the table to a goal 10-15 cm away.
class PushPolicy : public ArmPolicy {
 public:
  PushPolicy(const sim::RobotController& c, const SceneRefs& s, const sim::World& w, Rng* rng) : ArmPolicy(c, s, w) {
    object_ = PickNonRolling(s, w, rng);
    const Vec3 start = sim::GetBodyPos(w.data(), object_);
    // A goal 10-15 cm away whose push line starts and ends on the table, in reach.
    for (int tries = 0; tries < 50; ++tries) {
      const double angle = rng->Uniform(-kPi, kPi), dist = rng->Uniform(0.1, 0.15);
      goal_ = {start[0] + dist * std::cos(angle), start[1] + dist * std::sin(angle), start[2]};
      const double pre_x = start[0] - 0.08 * std::cos(angle), pre_y = start[1] - 0.08 * std::sin(angle);
      if (goal_[0] > 0.35 && goal_[0] < 0.75 && std::abs(goal_[1]) < 0.3 && pre_x > 0.3 && pre_x < 0.75 && std::abs(pre_y) < 0.35) {
        break;
      }
    }
  }
  std::vector<double> Act(const sim::World& w) override {
    const Vec3 obj = sim::GetBodyPos(w.data(), object_);
    double dx = goal_[0] - obj[0], dy = goal_[1] - obj[1];
    const double n = std::max(std::hypot(dx, dy), 1e-6);
    dx /= n;
    dy /= n;
    const double low = scene_.table_top + 0.02, behind = 0.07;
    const Vec3 pre = {obj[0] - behind * dx, obj[1] - behind * dy, low};
    if (phase_ == 0) {  // above the pre-push point
      const Vec3 above = {pre[0], pre[1], scene_.table_top + kSafeHeight};
      if (Near(w, above, 0.02)) phase_ = 1;
      return Toward(w, above, down_, 1);
    }
    if (phase_ == 1) {  // down beside the object
      if (Near(w, pre, 0.015)) phase_ = 2;
      return Toward(w, CentredDescent(w, pre), down_, 1, 0.6);
    }
    if (phase_ == 2 && Success(w)) phase_ = 3;
    if (phase_ == 3) {  // done: lift away
      return Toward(w, {Ee(w)[0], Ee(w)[1], scene_.table_top + 0.15}, down_, 1, 0.5);
    }
    const Vec3 ee = Ee(w);
    // The object slid off the push line (the fingers are no longer behind it): lift over it and
    // come down behind it again.
    const double lateral = std::abs((ee[0] - obj[0]) * dy - (ee[1] - obj[1]) * dx);
    if (phase_ == 2 && lateral > 0.025) phase_ = 4;
    if (phase_ == 4) {
      const Vec3 over = {pre[0], pre[1], scene_.table_top + 0.09};
      if (Near(w, over, 0.02)) phase_ = 1;
      return Toward(w, over, down_, 1, 0.6);
    }
    // Push toward a point just ahead of the object along its current line to the goal.
    const Vec3 target = {obj[0] + 0.02 * dx, obj[1] + 0.02 * dy, low};
    return Toward(w, target, down_, 1, 0.3);
  }
  bool Success(const sim::World& w) const override {
    const Vec3 obj = sim::GetBodyPos(w.data(), object_);
    return std::hypot(obj[0] - goal_[0], obj[1] - goal_[1]) < 0.04;
  }

 private:
  int object_;
  Vec3 goal_;
  int phase_ = 0;
};

// Pick: grasp the box or the cup from above, lift it, carry it to a place target, release.
class PickPolicy : public ArmPolicy {
 public:
  PickPolicy(const sim::RobotController& c, const SceneRefs& s, const sim::World& w, Rng* rng) : ArmPolicy(c, s, w) {
    // The box most of the time: the tall cup (6 cm across in an 8 cm gripper) tips or is knocked off
    // in most scripted grasps, which is useful off-expert data but rarely a success.
    object_ = PickNonRolling(s, w, rng);
    for (int b : s.object_bodies) {
      if (w.model()->geom_type[w.model()->body_geomadr[b]] == mjGEOM_BOX && rng->Bernoulli(0.8)) object_ = b;
    }
    const Vec3 start = sim::GetBodyPos(w.data(), object_);
    for (int tries = 0; tries < 30; ++tries) {
      place_ = {rng->Uniform(0.4, 0.7), rng->Uniform(-0.25, 0.25), start[2]};
      if (std::hypot(place_[0] - start[0], place_[1] - start[1]) > 0.1) break;
    }
    rest_height_ = start[2];
    // Turn the fingers to face the object's sides (box) by the smallest yaw.
    const int g = w.model()->body_geomadr[object_];
    if (w.model()->geom_type[g] == mjGEOM_BOX) {
      const double* r = w.data()->site_xmat + 9 * c.ee_site();
      const double finger_yaw = std::atan2(r[4], r[1]);  // the site's y axis: the closing direction
      double delta = std::remainder(BodyYaw(w, object_) - finger_yaw, kPi / 2);
      grasp_quat_ = YawRotated(down_, delta);
    } else {
      grasp_quat_ = down_;
    }
  }
  std::vector<double> Act(const sim::World& w) override {
    const Vec3 obj = sim::GetBodyPos(w.data(), object_);
    const double grasp_z = std::max(obj[2], scene_.table_top + 0.015);
    switch (phase_) {
      case 0: {  // above the object, open
        const Vec3 above = {obj[0], obj[1], scene_.table_top + kSafeHeight};
        if (Near(w, above, 0.02)) phase_ = 1;
        return Toward(w, above, grasp_quat_, -1);
      }
      case 1: {  // down around it, descending only while centred over it
        const Vec3 at = {obj[0], obj[1], grasp_z};
        if (Near(w, at, 0.012)) phase_ = 2;
        return Toward(w, CentredDescent(w, at), grasp_quat_, -1, 0.6);
      }
      case 2:  // close and wait, holding still
        if (++wait_ >= 6) phase_ = 3;
        return Toward(w, {obj[0], obj[1], grasp_z}, grasp_quat_, 1, 0.2);
      case 3: {  // lift
        if (Ee(w)[2] > scene_.table_top + 0.17) phase_ = 4;
        return Toward(w, {Ee(w)[0], Ee(w)[1], scene_.table_top + 0.2}, grasp_quat_, 1, 0.6);
      }
      case 4: {  // carry
        const Vec3 above = {place_[0], place_[1], scene_.table_top + 0.2};
        if (Near(w, above, 0.02)) phase_ = 5;
        return Toward(w, above, grasp_quat_, 1, 0.6);
      }
      case 5: {  // lower
        const Vec3 down = {place_[0], place_[1], rest_height_ + 0.01};
        if (Near(w, down, 0.015) || obj[2] < rest_height_ + 0.012) phase_ = 6;
        return Toward(w, down, grasp_quat_, 1, 0.5);
      }
      case 6:  // release
        if (++release_ >= 5) phase_ = 7;
        return Toward(w, Ee(w), grasp_quat_, -1);
      default: {  // retreat
        const Vec3 up = {place_[0], place_[1], scene_.table_top + 0.2};
        return Toward(w, up, grasp_quat_, -1);
      }
    }
  }
  bool Success(const sim::World& w) const override {
    const Vec3 obj = sim::GetBodyPos(w.data(), object_);
    return phase_ >= 6 && std::hypot(obj[0] - place_[0], obj[1] - place_[1]) < 0.04 && std::abs(obj[2] - rest_height_) < 0.02;
  }

 private:
  int object_;
  Vec3 place_;
  double rest_height_ = 0;
  Quat grasp_quat_;
  int phase_ = 0, wait_ = 0, release_ = 0;
};

// Wander: smooth random end-effector deltas (an Ornstein-Uhlenbeck process), kept in a box above
// the table; the gripper toggles now and then.
class WanderPolicy : public ArmPolicy {
 public:
  WanderPolicy(const sim::RobotController& c, const SceneRefs& s, const sim::World& w, Rng* rng)
      : ArmPolicy(c, s, w), rng_(rng->Next()), lo_{0.25, -0.35, s.table_top + 0.06}, hi_{0.7, 0.35, s.table_top + 0.45} {}
  std::vector<double> Act(const sim::World& w) override {
    const auto& scale = controller_.embodiment().action_scale;
    const Vec3 ee = Ee(w);
    std::vector<double> a(7);
    for (int k = 0; k < 6; ++k) state_[k] = 0.8 * state_[k] + rng_.Normal(0, k < 3 ? 0.3 : 0.15);
    for (int k = 0; k < 3; ++k) {
      const double pull = (std::clamp(ee[k], lo_[k], hi_[k]) - ee[k]) / scale.position;
      a[k] = Clamp1(state_[k] + 2 * pull);
    }
    const Vec3 back = sim::OrientationError(down_, EeQuat(w));  // drift, but not too far from pointing down
    for (int k = 0; k < 3; ++k) a[3 + k] = Clamp1(state_[3 + k] + 0.5 * back[k] / scale.rotation);
    if (rng_.Bernoulli(0.05)) gripper_ = -gripper_;
    a[6] = gripper_;
    return a;
  }
  bool Success(const sim::World& w) const override {
    const Vec3 ee = Ee(w);
    for (int k = 0; k < 3; ++k) {
      if (ee[k] < lo_[k] - 0.05 || ee[k] > hi_[k] + 0.05) return false;
    }
    return true;
  }

 private:
  Rng rng_;
  Vec3 lo_, hi_;
  std::array<double, 6> state_{};
  double gripper_ = -1;
};

// Humanoid motions: a sequence of joint-space keyframes, each held until reached (or timed out).
class KeyframePolicy : public Policy {
 public:
  KeyframePolicy(const sim::RobotController& c, std::vector<std::vector<double>> keyframes) : controller_(c), keyframes_(std::move(keyframes)) {}
  std::vector<double> Act(const sim::World& w) override {
    const auto q = controller_.JointPositions(w.data());
    if (next_ < keyframes_.size() && (Reached(q, keyframes_[next_]) || ++steps_on_key_ > 35)) {
      if (Reached(q, keyframes_[next_])) ++reached_;
      ++next_;
      steps_on_key_ = 0;
    }
    const auto& key = keyframes_[std::min(next_, keyframes_.size() - 1)];
    const auto targets = controller_.JointTargets(w.data());
    const double scale = controller_.embodiment().action_scale.joint;
    std::vector<double> a(key.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = Clamp1((key[i] - targets[i]) / scale);
    return a;
  }
  // The motion is done when every keyframe but the last (the way back to rest) was reached.
  bool Success(const sim::World&) const override { return reached_ + 1 >= keyframes_.size(); }

 private:
  static bool Reached(const std::vector<double>& q, const std::vector<double>& key) {
    for (size_t i = 0; i < q.size(); ++i) {
      if (std::abs(q[i] - key[i]) > 0.12) return false;
    }
    return true;
  }
  const sim::RobotController& controller_;
  std::vector<std::vector<double>> keyframes_;
  size_t next_ = 0, reached_ = 0;
  int steps_on_key_ = 0;
};

// Builds humanoid keyframes by joint name from home.
class Keyframes {
 public:
  explicit Keyframes(const robots::Embodiment& e) : e_(e) {}
  std::vector<double> Home() const { return e_.home; }
  std::vector<double> With(std::vector<double> q, const std::string& role, double value) const {
    const int i = e_.JointForRole(role);
    if (i < 0) throw std::logic_error("joint role " + role + " unmapped (TasksFor checks the roles)");
    q[i] = value;
    return q;
  }

 private:
  const robots::Embodiment& e_;
};

std::vector<std::vector<double>> HumanoidKeyframes(Task task, const sim::RobotController& c, const sim::World& w, Rng* rng) {
  const Keyframes k(c.embodiment());
  const std::string side = rng->Bernoulli(0.5) ? "right" : "left";
  const double out = side == "right" ? -1 : 1;  // abduction sign of this side's shoulder_x
  std::vector<std::vector<double>> keys;
  switch (task) {
    case Task::kReach: {
      auto q = k.With(k.Home(), side + "_shoulder_y", rng->Uniform(-1.7, -0.5));
      q = k.With(q, side + "_shoulder_x", out * rng->Uniform(0.0, 0.5));
      q = k.With(q, side + "_elbow", rng->Uniform(-1.2, -0.1));
      q = k.With(q, "abdomen_z", -out * rng->Uniform(0.0, 0.4));
      q = k.With(q, "abdomen_y", rng->Uniform(0.0, 0.4));
      keys = {q, k.Home()};
      break;
    }
    case Task::kSquat: {
      const double d = rng->Uniform(0.4, 0.9);
      auto q = k.Home();
      for (const std::string s : {"right", "left"}) {
        q = k.With(q, s + "_hip_y", -d);
        q = k.With(q, s + "_knee", 2 * d);
        q = k.With(q, s + "_ankle_y", -d);
        q = k.With(q, s + "_shoulder_y", -rng->Uniform(0.5, 1.2));
      }
      q = k.With(q, "abdomen_y", rng->Uniform(0.2, 0.5));
      keys = {q, k.Home()};
      break;
    }
    case Task::kTurn: {
      const double dir = rng->Bernoulli(0.5) ? 1 : -1;
      auto q = k.With(k.With(k.Home(), "abdomen_z", dir * rng->Uniform(0.4, 0.75)), "neck_z", dir * rng->Uniform(0.3, 0.9));
      auto r = k.With(k.With(k.Home(), "abdomen_z", -dir * rng->Uniform(0.4, 0.75)), "neck_z", -dir * rng->Uniform(0.3, 0.9));
      keys = {q, r, k.Home()};
      break;
    }
    case Task::kWave: {
      const auto raised = k.With(k.Home(), side + "_shoulder_x", out * rng->Uniform(1.6, 2.2));
      keys.push_back(k.With(raised, side + "_elbow", -0.4));
      for (int i = 0; i < 2; ++i) {
        keys.push_back(k.With(raised, side + "_elbow", -1.3));
        keys.push_back(k.With(raised, side + "_elbow", -0.4));
      }
      keys.push_back(k.Home());
      break;
    }
    default: {  // random smooth targets within the joint ranges
      const mjModel* m = w.model();
      for (int n = 0; n < 3; ++n) {
        auto q = k.Home();
        for (size_t i = 0; i < q.size(); ++i) {
          const int j = sim::RequireId(m, mjOBJ_JOINT, c.embodiment().joints[i]);
          const double lo = m->jnt_range[2 * j], hi = m->jnt_range[2 * j + 1];
          q[i] = std::clamp(q[i] + 0.4 * rng->Uniform(lo - q[i], hi - q[i]), lo, hi);
        }
        keys.push_back(q);
      }
    }
  }
  return keys;
}

}  // namespace

std::string TaskName(Task task) {
  switch (task) {
    case Task::kReach: return "reach";
    case Task::kPush: return "push";
    case Task::kPick: return "pick";
    case Task::kWander: return "wander";
    case Task::kSquat: return "squat";
    case Task::kTurn: return "turn";
    case Task::kWave: return "wave";
  }
  return "?";
}

// The tasks a --task value names on this kind of robot.
static std::vector<Task> TasksNamed(const robots::Embodiment& embodiment, const std::string& task) {
  const bool arm = embodiment.kind == robots::EmbodimentKind::kArm;
  const std::vector<Task> arm_tasks = {Task::kReach, Task::kPush, Task::kPick, Task::kWander};
  const std::vector<Task> humanoid_tasks = {Task::kReach, Task::kSquat, Task::kTurn, Task::kWave, Task::kWander};
  const auto& valid = arm ? arm_tasks : humanoid_tasks;
  if (task == "mix") return valid;
  for (Task t : valid) {
    if (TaskName(t) == task) return {t};
  }
  std::string names;
  for (Task t : valid) names += TaskName(t) + "|";
  throw std::invalid_argument("task \"" + task + "\" is not one the " + embodiment.name + " embodiment can do; use " + names + "mix");
}

std::vector<std::string> HumanoidRoles(Task task) {
  std::vector<std::string> roles;
  auto sides = [&](std::initializer_list<const char*> joints) {
    for (const char* side : {"right_", "left_"}) {
      for (const char* j : joints) roles.push_back(std::string(side) + j);
    }
  };
  switch (task) {
    case Task::kReach: sides({"shoulder_y", "shoulder_x", "elbow"}), roles.insert(roles.end(), {"abdomen_z", "abdomen_y"}); break;
    case Task::kSquat: sides({"hip_y", "knee", "ankle_y", "shoulder_y"}), roles.push_back("abdomen_y"); break;
    case Task::kTurn: roles = {"abdomen_z", "neck_z"}; break;
    case Task::kWave: sides({"shoulder_x", "elbow"}); break;
    default: break;
  }
  return roles;
}

std::vector<Task> TasksFor(const robots::Embodiment& embodiment, const std::string& task) {
  std::vector<Task> tasks = TasksNamed(embodiment, task);
  if (embodiment.kind != robots::EmbodimentKind::kHumanoid) return tasks;
  // Every joint a task moves must play its role on this robot: never run a task with joints missing.
  // The refusal says what every task lacks and which tasks would run, so one edit of the descriptor
  // fixes them all.
  auto missing_roles = [&](Task t) {
    std::string missing;
    for (const auto& role : HumanoidRoles(t)) {
      if (embodiment.JointForRole(role) < 0) missing += (missing.empty() ? "" : ", ") + role;
    }
    return missing;
  };
  std::string refused;
  for (Task t : tasks) {
    if (!missing_roles(t).empty()) refused += (refused.empty() ? "" : ", ") + TaskName(t);
  }
  if (refused.empty()) return tasks;
  std::string needs, runnable;
  for (Task t : TasksNamed(embodiment, "mix")) {
    const std::string missing = missing_roles(t);
    if (missing.empty()) {
      runnable += (runnable.empty() ? "" : ", ") + TaskName(t);
    } else {
      needs += (needs.empty() ? "" : "; ") + TaskName(t) + ": " + missing;
    }
  }
  throw std::invalid_argument("--task " + task + ": " + embodiment.name + " lacks joint roles that " + refused +
                              " needs. Roles it lacks, per task: " + needs + ". Tasks that run with the roles given: " + runnable +
                              ". Add \"roles\": {\"<role>\": \"<your joint>\", ...} to its descriptor, or pick a task that runs");
}

std::unique_ptr<Policy> MakePolicy(Task task, const sim::RobotController& controller, const SceneRefs& scene, const sim::World& world, Rng* rng) {
  if (controller.embodiment().kind == robots::EmbodimentKind::kHumanoid) {
    return std::make_unique<KeyframePolicy>(controller, HumanoidKeyframes(task, controller, world, rng));
  }
  switch (task) {
    case Task::kReach: return std::make_unique<ReachPolicy>(controller, scene, world, rng);
    case Task::kPush: return std::make_unique<PushPolicy>(controller, scene, world, rng);
    case Task::kPick: return std::make_unique<PickPolicy>(controller, scene, world, rng);
    default: return std::make_unique<WanderPolicy>(controller, scene, world, rng);
  }
}

}  // namespace embody::collect
