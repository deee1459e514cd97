#include "adapt/surprise/surprise.h"

#include "adapt/surprise/clips.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <optional>

#include "adapt/core/error.h"
#include "adapt/plan/arm_scene.h"
#include "collect/collector.h"
#include "collect/dataset.h"
#include "sim/controller.h"

namespace embody::adapt {
namespace {

namespace F = torch::nn::functional;
using Vec3 = std::array<double, 3>;

struct BodyPose {
  Vec3 pos{};
  std::array<double, 4> quat{1, 0, 0, 0};
};

// A free body's pose and velocity live in its free joint.
int QposOf(const mjModel* m, int body) { return m->jnt_qposadr[m->body_jntadr[body]]; }
int DofOf(const mjModel* m, int body) { return m->jnt_dofadr[m->body_jntadr[body]]; }

BodyPose GetPose(const sim::World& world, int body) {
  const int q = QposOf(world.model(), body);
  BodyPose p;
  for (int k = 0; k < 3; ++k) p.pos[k] = world.data()->qpos[q + k];
  for (int k = 0; k < 4; ++k) p.quat[k] = world.data()->qpos[q + 3 + k];
  return p;
}

// Poses a free body kinematically (at rest) and updates everything derived from the state.
void SetPose(sim::World& world, int body, const BodyPose& p) {
  mjData* d = world.mutable_data();
  const int q = QposOf(world.model(), body), v = DofOf(world.model(), body);
  for (int k = 0; k < 3; ++k) d->qpos[q + k] = p.pos[k];
  for (int k = 0; k < 4; ++k) d->qpos[q + 3 + k] = p.quat[k];
  for (int k = 0; k < 6; ++k) d->qvel[v + k] = 0;
  world.Forward();
}

// The pose of object `slot` (its place in SceneRefs::object_bodies) at control step t of a clip.
BodyPose RecordedPose(const collect::EpisodeData& clip, int slot, int t) {
  const float* o = clip.object.data() + static_cast<size_t>(t) * clip.object_dim + 7 * slot;
  BodyPose p;
  for (int k = 0; k < 3; ++k) p.pos[k] = o[k];
  for (int k = 0; k < 4; ++k) p.quat[k] = o[3 + k];
  return p;
}

// Far below the floor and far to the side: out of every camera's view, reflections included.
const BodyPose kHidden{{100.0, 100.0, -10.0}, {1, 0, 0, 0}};
// Fewest pixels of the object a violation frame must show at 64 px (scaled with the image's area).
constexpr int kMinVisiblePixels = 6;

// Switches a body's collisions off while alive (the model is the runner's, shared by every clip).
class CollisionsOff {
 public:
  CollisionsOff(mjModel* m, int body) : m_(m) {
    for (int g = 0; g < m->ngeom; ++g) {
      if (m->geom_bodyid[g] != body) continue;
      saved_.push_back({g, m->geom_contype[g], m->geom_conaffinity[g]});
      m->geom_contype[g] = 0;
      m->geom_conaffinity[g] = 0;
    }
  }
  ~CollisionsOff() {
    for (const auto& [g, type, affinity] : saved_) {
      m_->geom_contype[g] = type;
      m_->geom_conaffinity[g] = affinity;
    }
  }
  CollisionsOff(const CollisionsOff&) = delete;
  CollisionsOff& operator=(const CollisionsOff&) = delete;

 private:
  mjModel* m_;
  std::vector<std::array<int, 3>> saved_;
};

// Pixels of camera 0 that the object covers, unoccluded, at control step t of a recorded clip: the
// frame rendered with and without it (the arm in front of it, or the image border, hide it).
int VisiblePixels(collect::EpisodeRunner& r, const collect::EpisodeData& clip, int body, int t) {
  sim::World& world = r.world();
  world.SetState(clip.states.data() + static_cast<size_t>(t) * clip.state_dim, clip.state_dim);
  sim::Image with, without;
  r.renderer()->Render(world.data(), r.draw().cameras.at(0), &with);
  SetPose(world, body, kHidden);
  r.renderer()->Render(world.data(), r.draw().cameras.at(0), &without);
  int n = 0;
  for (size_t i = 0; i + 2 < with.rgb.size(); i += 3) {
    int d = 0;
    for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(static_cast<int>(with.rgb[i + c]) - static_cast<int>(without.rgb[i + c])));
    n += d > 24;
  }
  return n;
}

double Horizontal(const Vec3& a, const Vec3& b) { return std::hypot(a[0] - b[0], a[1] - b[1]); }

std::string BodyName(const mjModel* m, int body) {
  const char* name = mj_id2name(m, mjOBJ_BODY, body);
  return name ? name : "";
}

// What a pair's two scripts share while it is drawn: the object the violation is about (its slot
// among the scene's objects and its body), the violation's control step tv, continuity's shift, the
// held pose of gravity's object, and the impossible clip's object with collisions off once it is
// posed by hand. The scripts' callbacks read it when the clips run (continuity sets body, slot, tv
// and shift from the possible clip before the impossible one runs).
struct PairDraft {
  SurprisePair* pair = nullptr;
  mjModel* m = nullptr;
  int slot = 0, body = 0, tv = 0, shift = 0, steps = 0;
  BodyPose held;
  std::optional<CollisionsOff> off;
};

// The impossible clip's (and for gravity the possible clip's) pose edits, per violation type.
void ScriptViolation(Violation type, std::int64_t index, collect::Rng& rng, PairDraft& d, collect::EpisodeScript* possible,
                     collect::EpisodeScript* impossible) {
  SurprisePair* pair = d.pair;
  switch (type) {
    case Violation::kPermanence: {
      const bool appear = (index / static_cast<int>(AllViolations().size())) % 2 == 1;
      pair->variant = appear ? "appear" : "disappear";
      if (appear) {
        impossible->before_record = [&d](int t, sim::World& w) {  // hidden until tv, then where the possible one rests
          if (t == 0) d.off.emplace(d.m, d.body);
          if (t < d.tv) return SetPose(w, d.body, kHidden);
          if (t == d.tv) {
            d.off.reset();
            SetPose(w, d.body, RecordedPose(d.pair->possible, d.slot, d.tv));
          }
        };
      } else {
        impossible->before_record = [&d](int t, sim::World& w) {  // there until tv, then gone
          if (t == d.tv) d.off.emplace(d.m, d.body);
          if (t >= d.tv) SetPose(w, d.body, kHidden);
        };
      }
      break;
    }
    case Violation::kSolidity:
      pair->variant = "through_table";
      impossible->before_record = [&d](int t, sim::World&) {
        if (t == d.tv) d.off.emplace(d.m, d.body);  // from here on the table does not hold it: it falls through
      };
      break;
    case Violation::kGravity: {
      pair->variant = "falls_upward";
      d.held.pos[2] += rng.Uniform(0.08, 0.15);
      possible->before_record = [&d](int t, sim::World& w) {
        if (t < d.tv) SetPose(w, d.body, d.held);  // held in the air, then released
      };
      impossible->before_record = [&d](int t, sim::World& w) {
        if (t < d.tv) return SetPose(w, d.body, d.held);
        if (t == d.tv) d.off.emplace(d.m, d.body);
        BodyPose p = RecordedPose(d.pair->possible, d.slot, t);
        p.pos[2] = 2 * d.held.pos[2] - p.pos[2];  // the fall, mirrored about the release height
        SetPose(w, d.body, p);
      };
      break;
    }
    case Violation::kContinuity:
      pair->variant = "moves_before_contact";
      impossible->before_record = [&d](int t, sim::World& w) {
        if (t == 0) d.off.emplace(d.m, d.body);
        SetPose(w, d.body, RecordedPose(d.pair->possible, d.slot, std::min(t + d.shift, d.steps - 1)));
      };
      break;
  }
}

// Continuity's object is the one the push moved most; it must move >= 3 cm, starting late enough to
// be shifted 2-3 model steps (k control steps each) earlier with two model steps still before it.
// Sets the draft's object, shift and tv; false when the possible clip does not allow the pair.
bool ChooseContinuityObject(const std::vector<int>& objects, int k, collect::Rng& rng, const mjModel* m, PairDraft& d) {
  const collect::EpisodeData& possible = d.pair->possible;
  const int T = d.steps;
  double best = 0;
  int best_slot = -1;
  for (int s = 0; s < static_cast<int>(objects.size()); ++s) {
    const double moved = Horizontal(RecordedPose(possible, s, T - 1).pos, RecordedPose(possible, s, 0).pos);
    if (moved > best) best = moved, best_slot = s;
  }
  if (best < 0.03) return false;
  int onset = 0;
  while (onset < T && Horizontal(RecordedPose(possible, best_slot, onset).pos, RecordedPose(possible, best_slot, 0).pos) < 0.005) ++onset;
  d.shift = rng.Int(2 * k, 3 * k);
  if (onset - d.shift < 2 * k) return false;
  d.pair->object = objects[best_slot];
  d.pair->object_name = BodyName(m, d.pair->object);
  d.body = d.pair->object;
  d.slot = best_slot;
  d.tv = onset - d.shift;
  return true;
}

}  // namespace

std::string ViolationName(Violation v) {
  switch (v) {
    case Violation::kPermanence: return "permanence";
    case Violation::kSolidity: return "solidity";
    case Violation::kContinuity: return "continuity";
    case Violation::kGravity: return "gravity";
  }
  return "?";
}

const std::vector<Violation>& AllViolations() {
  static const std::vector<Violation> all = {Violation::kPermanence, Violation::kSolidity, Violation::kContinuity, Violation::kGravity};
  return all;
}

Violation ParseViolation(const std::string& name) {
  for (Violation v : AllViolations()) {
    if (ViolationName(v) == name) return v;
  }
  throw AdaptError("unknown violation type '" + name + "' (permanence, solidity, continuity or gravity)");
}

// ---------------------------------------------------------------------------------------------------
// The generator.

ViolationGenerator::ViolationGenerator(const std::string& robot, const collect::RandomizationConfig& randomization, int image_size,
                                       std::uint64_t seed, int steps, int model_step)
    : model_step_(model_step) {
  if (model_step < 1 || steps < 12 * model_step) {
    throw AdaptError("a surprise clip needs at least 12 model steps (--steps >= 12 x the frame skip)");
  }
  runner_ = MakeArmSceneRunner(robot, randomization, image_size, seed, "surprise", &config_);
  config_.steps = steps;
  if (runner_->scene().object_bodies.empty()) throw AdaptError("surprise needs objects in the scene; " + robot + "'s has none");
}

void ViolationGenerator::set_views(int n) {
  if (n < 1 || n > 16) throw AdaptError("surprise clips record 1 to 16 cameras, not " + std::to_string(n));
  config_.cameras = n;
}

void ViolationGenerator::set_hand_camera(bool on) {
  if (on == config_.eye_in_hand) return;
  config_.eye_in_hand = on;
  runner_ = std::make_unique<collect::EpisodeRunner>(config_);  // the runner records it from its config
}

SurprisePair ViolationGenerator::Generate(std::int64_t index, Violation type) {
  constexpr int kMaxAttempts = 20;
  SurprisePair pair;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    try {
      if (Try(index, type, attempt, &pair)) {
        pair.attempts = attempt + 1;
        return pair;
      }
    } catch (const sim::UnstableError&) {
      // redrawn like an unstable collection episode
    }
  }
  throw AdaptError("no " + ViolationName(type) + " pair could be drawn for index " + std::to_string(index) + " in " + std::to_string(kMaxAttempts) +
                   " scenes");
}

bool ViolationGenerator::Try(std::int64_t index, Violation type, int attempt, SurprisePair* pair) {
  collect::EpisodeRunner& r = *runner_;
  sim::World& world = r.world();
  // Pair streams are apart from simcollect's episodes of the same seed: the type is mixed in.
  collect::Rng rng = collect::Rng::ForEpisode(config_.seed ^ (0x51ED270B27u * (static_cast<std::uint64_t>(type) + 1)), index, attempt);
  r.DrawScene(1, &rng, [&](collect::Draw* draw) {
    AddCameras(r.randomizer(), config_.randomization, config_.cameras,
               collect::Rng::ForEpisode(config_.seed ^ (0x2545F4914F6CDD1Dull * (static_cast<std::uint64_t>(type) + 1)), index, attempt), draw);
  });
  const auto start = world.GetState();
  const auto& objects = r.scene().object_bodies;
  PairDraft d;
  d.pair = pair;
  d.m = world.mutable_model();
  d.slot = rng.Int(0, static_cast<int>(objects.size()) - 1);
  const int k = model_step_, T = config_.steps;
  d.steps = T;
  d.tv = rng.Int(3 * k, T - 4 * k);

  *pair = SurprisePair{};
  pair->index = index;
  pair->type = type;
  pair->object = objects[d.slot];
  pair->object_name = BodyName(world.model(), pair->object);

  // The possible clip's actions: a scripted push for continuity (the arm must move the object),
  // else a scripted reach (the arm moves through the scene). No noise: the clip is what it is.
  const collect::Task task = type == Violation::kContinuity ? collect::Task::kPush : collect::Task::kReach;
  std::shared_ptr<collect::Policy> policy = collect::MakePolicy(task, r.controller(), r.scene(), world, &rng);
  collect::EpisodeScript possible;
  possible.task = collect::TaskName(task);
  std::vector<std::vector<double>> actions;  // replayed exactly (the recorded ones are rounded to float)
  possible.action = [&](int, const sim::World& w) {
    actions.push_back(policy->Act(w));
    return actions.back();
  };
  d.body = pair->object;  // the scripts pose this body (continuity: the one the push moved)
  const BodyPose rest = GetPose(world, d.body);
  d.held = rest;
  collect::EpisodeScript impossible;
  impossible.task = possible.task;
  ScriptViolation(type, index, rng, d, &possible, &impossible);

  pair->possible = r.RunScript(index, T, possible);
  // What the possible clip must show for the pair to mean anything.
  if (type == Violation::kContinuity) {
    if (!ChooseContinuityObject(objects, k, rng, world.model(), d)) return false;
  } else if (type != Violation::kGravity) {
    // The object must rest where the violation happens (the reach may have knocked it).
    const BodyPose at = RecordedPose(pair->possible, d.slot, d.tv);
    if (at.pos[2] < table_top() - 0.01 || Horizontal(at.pos, rest.pos) > 0.02) return false;
  }
  // And show: enough of it unoccluded in the frame where the clips start to differ.
  if (VisiblePixels(r, pair->possible, d.body, d.tv) < std::max(2, kMinVisiblePixels * config_.image_size * config_.image_size / (64 * 64))) {
    return false;
  }
  pair->violation_step = d.tv;

  world.SetState(start);
  impossible.action = [&](int t, const sim::World&) { return actions.at(t); };
  pair->impossible = r.RunScript(index, T, impossible);
  d.off.reset();
  for (auto* clip : {&pair->possible, &pair->impossible}) {
    clip->extra_attrs = nlohmann::json::object();
    SetSurpriseClipInfo({ViolationName(type), pair->variant, pair->object_name, clip == &pair->possible, static_cast<int>(index), d.tv}, clip);
  }
  return true;
}

std::vector<double> ViolationGenerator::PhysicsSurprise(const collect::EpisodeData& clip, int k) {
  collect::EpisodeRunner& r = *runner_;
  if (clip.draw != r.draw().ToJson()) throw AdaptError("PhysicsSurprise needs a clip of the last generated pair (its scene is loaded)");
  sim::World& world = r.world();
  const auto& objects = r.scene().object_bodies;
  const int a = clip.action_dim;
  std::vector<double> surprise;
  for (int t = k; t < clip.steps; t += k) {
    world.SetState(clip.states.data() + static_cast<size_t>(t - k) * clip.state_dim, clip.state_dim);
    try {
      for (int i = t - k; i < t; ++i) {
        const std::vector<double> action(clip.actions.begin() + static_cast<std::ptrdiff_t>(i) * a,
                                         clip.actions.begin() + static_cast<std::ptrdiff_t>(i + 1) * a);
        r.controller().ApplyAction(world.model(), world.mutable_data(), action);
        world.Step(r.substeps());
      }
    } catch (const sim::UnstableError&) {
      surprise.push_back(1.0);  // physics cannot even continue from here: as surprising as a metre off
      continue;
    }
    double error = 0;
    for (int s = 0; s < static_cast<int>(objects.size()); ++s) {
      const Vec3 p = sim::GetBodyPos(world.data(), objects[s]), seen = RecordedPose(clip, s, t).pos;
      error += std::hypot(p[0] - seen[0], p[1] - seen[1], p[2] - seen[2]);
    }
    surprise.push_back(error / static_cast<double>(objects.size()));
  }
  return surprise;
}

// ---------------------------------------------------------------------------------------------------
// Scoring.

SurpriseScorer::SurpriseScorer(WorldModel& model, FrozenEncoder& encoder, const std::string& embodiment, int context)
    : model_(model), encoder_(encoder), embodiment_(embodiment),
      context_(context > 0 ? std::min(context, model.config().context) : model.config().context) {
  model_.RequireEmbodiment(embodiment);
  model.config().RequireNumberedCameras("surprise records");
  model_.Train(false);
}

SurpriseCurves SurpriseScorer::Score(const collect::EpisodeData& clip) {
  torch::NoGradGuard no_grad;
  const EmbodimentSpec& spec = model_.spec(embodiment_);
  if (clip.image_size != encoder_.image_size()) {
    throw AdaptError("the clip is " + std::to_string(clip.image_size) + " px; the encoder takes " + std::to_string(encoder_.image_size()));
  }
  if (clip.action_dim != spec.action_dim || clip.num_joints != spec.joints || clip.gripper_dim != spec.gripper) {
    throw AdaptError("the clip's robot (" + std::to_string(clip.action_dim) + " action dims, " + std::to_string(clip.num_joints) +
                     " joints) is not the model's " + embodiment_);
  }
  const int k = model_.config().frame_skip, S = clip.image_size, A = clip.action_dim, J = clip.num_joints, G = clip.gripper_dim;
  const int M = (clip.steps - 1) / k + 1;  // model frames at control steps 0, k, 2k, ...
  if (M < 2) throw AdaptError("a clip of " + std::to_string(clip.steps) + " steps has fewer than two model steps");
  const int views = model_.config().views(), agents = model_.config().agent_views();
  const bool hand = model_.config().reads_hand();
  if (clip.num_cameras < agents || static_cast<int>(clip.images.size()) < agents || static_cast<int>(clip.extrinsics.size()) < agents) {
    throw AdaptError("the clip records " + std::to_string(clip.num_cameras) + " cameras; the model reads " + std::to_string(agents));
  }
  if (hand && clip.eye_in_hand_extrinsics.size() < 16) throw AdaptError("the clip does not record the hand's camera; the model reads it");
  // The frames of view v: the agent views, then the hand's.
  auto bytes_of = [&](int v) -> const std::vector<std::uint8_t>& { return v < agents ? clip.images[v] : clip.eye_in_hand_images; };
  for (int v = 0; v < views; ++v) {
    if (bytes_of(v).size() != static_cast<size_t>(clip.steps) * S * S * 3) {
      throw AdaptError("the clip's " + model_.config().cameras[v] + " has " + std::to_string(bytes_of(v).size()) + " bytes of frames, not " +
                       std::to_string(clip.steps) + " frames of " + std::to_string(S) + " px");
    }
  }
  // Model frames of every camera the model reads, encoded, each camera's tokens in turn (M, views N, D).
  auto frames_of = [&](int camera) {
    return torch::from_blob(const_cast<std::uint8_t*>(bytes_of(camera).data()), {clip.steps, S, S, 3}, torch::kUInt8)
        .index_select(0, torch::arange(0, static_cast<int64_t>(M) * k, k));
  };
  const auto video = frames_of(0);
  std::vector<torch::Tensor> per_view;
  std::vector<double> extrinsics;
  for (int v = 0; v < views; ++v) {
    const auto zv = encoder_.Encode(FramesToInput((v == 0 ? video : frames_of(v)).unsqueeze(0)))[0];  // (M, N, D)
    per_view.push_back(F::layer_norm(zv, F::LayerNormFuncOptions({zv.size(-1)})));
    if (v < agents) {
      extrinsics.insert(extrinsics.end(), clip.extrinsics[v].begin(), clip.extrinsics[v].end());
    } else {  // where the camera sits on the hand, at the first frame
      const auto on_hand = PoseOnHand(std::vector<double>(clip.eye_in_hand_extrinsics.begin(), clip.eye_in_hand_extrinsics.begin() + 16),
                                      {clip.eef_pos.at(0), clip.eef_pos.at(1), clip.eef_pos.at(2)},
                                      {clip.eef_quat.at(0), clip.eef_quat.at(1), clip.eef_quat.at(2), clip.eef_quat.at(3)});
      extrinsics.insert(extrinsics.end(), on_hand.begin(), on_hand.end());
    }
  }
  const auto z = views == 1 ? per_view[0] : torch::cat(per_view, 1);
  std::vector<float> proprio;
  for (int i = 0; i < M; ++i) {
    const size_t t = static_cast<size_t>(i) * k;
    const auto row = collect::ProprioRow(spec.layout(), clip.joint_pos.data() + t * J, clip.joint_vel.data() + t * J, clip.eef_pos.data() + t * 3,
                                         clip.eef_quat.data() + t * 4, G > 0 ? clip.gripper_qpos.data() + t * G : nullptr);
    proprio.insert(proprio.end(), row.begin(), row.end());
  }
  const auto q = torch::tensor(proprio).reshape({M, spec.proprio_dim()});
  // The k actions of model step i (control steps i k .. i k + k - 1), zero-padded past the clip's end.
  auto actions = torch::zeros({M, k * A});
  const auto all = torch::tensor(clip.actions).reshape({clip.steps * A});
  for (int i = 0; i < M; ++i) {
    const int64_t from = static_cast<int64_t>(i) * k * A, to = std::min<int64_t>(from + k * A, all.size(0));
    if (to > from) actions[i].slice(0, 0, to - from).copy_(all.slice(0, from, to));
  }
  const auto pixels = video.to(torch::kFloat32) / 255.0;  // camera 0's: the pixel baseline

  // The model's inputs moved to its device once; copy-last and pixel change stay on the CPU.
  const torch::Device dev = model_.device();
  const auto z_dev = z.to(dev), q_dev = q.to(dev), actions_dev = actions.to(dev);
  const auto camera = CameraFeatures(extrinsics).unsqueeze(0).to(dev);
  SurpriseCurves curves;
  for (int t = 1; t < M; ++t) {
    const int c = std::min(context_, t);
    const auto window = torch::arange(t - c, t, torch::TensorOptions(torch::kLong).device(dev));
    const auto pred = model_.Predict(embodiment_, z_dev.index_select(0, window).unsqueeze(0), q_dev.index_select(0, window).unsqueeze(0),
                                     actions_dev.index_select(0, window).unsqueeze(0), camera)[0][c - 1];
    curves.model.push_back((pred - z_dev[t]).abs().mean().item<double>());
    curves.copy_last.push_back((z[t] - z[t - 1]).abs().mean().item<double>());
    curves.pixel.push_back((pixels[t] - pixels[t - 1]).abs().mean().item<double>());
  }
  return curves;
}

double PairwiseAccuracy(const std::vector<double>& impossible, const std::vector<double>& possible) {
  if (impossible.empty() || impossible.size() != possible.size()) throw AdaptError("pairwise accuracy needs two lists of equal, non-zero length");
  double right = 0;
  for (size_t i = 0; i < impossible.size(); ++i) right += impossible[i] > possible[i] ? 1.0 : impossible[i] == possible[i] ? 0.5 : 0.0;
  return right / static_cast<double>(impossible.size());
}

double Auroc(const std::vector<double>& positive, const std::vector<double>& negative) {
  if (positive.empty() || negative.empty()) throw AdaptError("AUROC needs positive and negative scores");
  double u = 0;
  for (double p : positive) {
    for (double n : negative) u += p > n ? 1.0 : p == n ? 0.5 : 0.0;
  }
  return u / (static_cast<double>(positive.size()) * static_cast<double>(negative.size()));
}

}  // namespace embody::adapt

// ---------------------------------------------------------------------------------------------------
// A whole run.

namespace embody::adapt {
namespace {

double Max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Clip scores of one detector on one set of pairs.
struct Scores {
  std::vector<double> impossible_max, possible_max, impossible_mean, possible_mean;
  void Append(const Scores& other) {
    for (auto [to, from] : {std::pair{&impossible_max, &other.impossible_max}, std::pair{&possible_max, &other.possible_max},
                            std::pair{&impossible_mean, &other.impossible_mean}, std::pair{&possible_mean, &other.possible_mean}}) {
      to->insert(to->end(), from->begin(), from->end());
    }
  }
  void Add(const std::vector<double>& impossible, const std::vector<double>& possible) {
    impossible_max.push_back(Max(impossible));
    possible_max.push_back(Max(possible));
    impossible_mean.push_back(Mean(impossible));
    possible_mean.push_back(Mean(possible));
  }
  // The headline (pairwise_accuracy, auroc) by `score` ("max" | "mean"), and both reductions.
  nlohmann::json ToJson(const std::string& score) const {
    const bool mean = score == "mean";
    return {{"pairwise_accuracy", mean ? PairwiseAccuracy(impossible_mean, possible_mean) : PairwiseAccuracy(impossible_max, possible_max)},
            {"auroc", mean ? Auroc(impossible_mean, possible_mean) : Auroc(impossible_max, possible_max)},
            {"pairwise_accuracy_max", PairwiseAccuracy(impossible_max, possible_max)},
            {"auroc_max", Auroc(impossible_max, possible_max)},
            {"pairwise_accuracy_mean", PairwiseAccuracy(impossible_mean, possible_mean)},
            {"auroc_mean", Auroc(impossible_mean, possible_mean)}};
  }
};

struct TypeScores {
  Scores model, copy_last, pixel, physics;
  double pixel_change_possible = 0, pixel_change_impossible = 0;  // sums of the clips' mean pixel change
  // Curves aligned at the violation: model steps -kBefore .. kAfter around the first differing frame.
  static constexpr int kBefore = 3, kAfter = 6;
  std::vector<double> aligned[4];  // model impossible, model possible, copy impossible, copy possible
  std::vector<int> aligned_n;
  int pairs = 0;
};

std::vector<float> ToFloat(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

nlohmann::json RunSurprise(WorldModel& model, const std::string& model_encoder_hash, FrozenEncoder& encoder, const SurpriseRunOptions& o,
                           const std::function<void(const std::string&)>& log) {
  if (o.pairs < 1) throw AdaptError("--pairs must be at least 1");
  if (o.types.empty()) throw AdaptError("no violation types to test");
  if (o.score != "max" && o.score != "mean") throw AdaptError("unknown --score '" + o.score + "' (mean or max)");
  encoder.RequireHash(model_encoder_hash);
  SurpriseScorer scorer(model, encoder, o.embodiment, o.context);  // refuses a model of another robot
  const int k = model.config().frame_skip;
  ViolationGenerator generator(o.robot.empty() ? o.embodiment : o.robot, o.randomization, encoder.image_size(), o.seed, o.steps, k);
  generator.set_views(model.config().agent_views());
  generator.set_hand_camera(model.config().reads_hand());
  const robots::Embodiment& robot = generator.runner().embodiment();
  if (model.spec(o.embodiment).action_dim != robot.action_dim()) {
    throw AdaptError("the model's " + o.embodiment + " takes " + std::to_string(model.spec(o.embodiment).action_dim) +
                     " action dims; the robot has " + std::to_string(robot.action_dim()));
  }
  std::map<std::int64_t, collect::EpisodeEntry> written;
  const nlohmann::json meta = collect::DatasetMeta(robot);
  collect::CollectConfig clip_config = generator.config();  // what the clips were drawn with
  clip_config.task = "surprise";
  if (!o.clips.empty()) std::filesystem::create_directories(collect::PartsDir(o.clips));

  std::map<Violation, TypeScores> by_type;
  Scores all_model, all_copy, all_pixel, all_physics;
  nlohmann::json per_pair = nlohmann::json::array();
  for (int i = 0; i < o.pairs; ++i) {
    const Violation type = o.types[i % o.types.size()];
    SurprisePair pair = generator.Generate(i, type);
    SurpriseCurves impossible = scorer.Score(pair.impossible), possible = scorer.Score(pair.possible);
    impossible.physics = generator.PhysicsSurprise(pair.impossible, k);
    possible.physics = generator.PhysicsSurprise(pair.possible, k);
    TypeScores& ts = by_type[type];
    ts.pairs++;
    for (auto [scores, all, imp, pos] : {std::tuple{&ts.model, &all_model, &impossible.model, &possible.model},
                                         std::tuple{&ts.copy_last, &all_copy, &impossible.copy_last, &possible.copy_last},
                                         std::tuple{&ts.pixel, &all_pixel, &impossible.pixel, &possible.pixel},
                                         std::tuple{&ts.physics, &all_physics, &impossible.physics, &possible.physics}}) {
      scores->Add(*imp, *pos);
      all->Add(*imp, *pos);
    }
    ts.pixel_change_impossible += Mean(impossible.pixel);
    ts.pixel_change_possible += Mean(possible.pixel);
    // Curve index j is model frame j + 1; the first frame that differs is ceil(tv / k).
    const int first = (pair.violation_step + k - 1) / k;
    if (ts.aligned_n.empty()) {
      for (auto& a : ts.aligned) a.assign(TypeScores::kBefore + TypeScores::kAfter + 1, 0.0);
      ts.aligned_n.assign(TypeScores::kBefore + TypeScores::kAfter + 1, 0);
    }
    for (int j = 0; j < static_cast<int>(impossible.model.size()); ++j) {
      const int rel = j + 1 - first + TypeScores::kBefore;
      if (rel < 0 || rel >= static_cast<int>(ts.aligned_n.size())) continue;
      ts.aligned[0][rel] += impossible.model[j];
      ts.aligned[1][rel] += possible.model[j];
      ts.aligned[2][rel] += impossible.copy_last[j];
      ts.aligned[3][rel] += possible.copy_last[j];
      ts.aligned_n[rel]++;
    }
    per_pair.push_back(
        {{"pair", i},
         {"type", ViolationName(type)},
         {"variant", pair.variant},
         {"object", pair.object_name},
         {"violation_frame", pair.violation_step},
         {"attempts", pair.attempts},
         {"impossible",
          {{"model", impossible.model}, {"copy_last", impossible.copy_last}, {"pixel", impossible.pixel}, {"physics", impossible.physics}}},
         {"possible", {{"model", possible.model}, {"copy_last", possible.copy_last}, {"pixel", possible.pixel}, {"physics", possible.physics}}}});
    if (!o.clips.empty()) {
      const auto parts = collect::PartsDir(o.clips);
      for (auto [clip, curves] : {std::pair{&pair.possible, &possible}, std::pair{&pair.impossible, &impossible}}) {
        clip->index = 2 * i + (clip == &pair.impossible ? 1 : 0);
        SetSurpriseClipCurves({k, ToFloat(curves->model), ToFloat(curves->copy_last), ToFloat(curves->pixel)}, clip);
        collect::WriteEpisodeFile(parts, *clip, meta);
        written[clip->index] = {(parts.filename() / collect::EpisodeFileName(clip->index)).string(), "/" + collect::DemoName(clip->index),
                                clip->steps};
      }
      // The top file is rewritten as pairs finish: valid whenever the run stops.
      collect::WriteTopFile(o.clips, written, collect::EnvArgs(clip_config), clip_config.Identity(), meta);
    }
    if (log) {
      auto score = [&](const std::vector<double>& v) { return o.score == "mean" ? Mean(v) : Max(v); };
      char line[320];
      std::snprintf(line, sizeof line, "pair %d %-10s %-20s %-4s frame %2d (%s): model %.3f vs %.3f (%s), copy-last %.3f vs %.3f, pixel %.4f vs %.4f",
                    i, ViolationName(type).c_str(), pair.variant.c_str(), pair.object_name.c_str(), pair.violation_step, o.score.c_str(),
                    score(impossible.model), score(possible.model), score(impossible.model) > score(possible.model) ? "right" : "wrong",
                    score(impossible.copy_last), score(possible.copy_last), score(impossible.pixel), score(possible.pixel));
      log(line);
    }
  }

  nlohmann::json out = all_model.ToJson(o.score);
  out["pairs"] = o.pairs;
  out["embodiment"] = o.embodiment;
  out["seed"] = o.seed;
  out["steps"] = o.steps;
  out["frame_skip"] = k;
  out["randomization"] = o.randomization.ToJson();
  out["score"] = o.score;
  out["baselines"] = {{"copy_last", all_copy.ToJson(o.score)}, {"pixel", all_pixel.ToJson(o.score)}};
  out["oracle"] = all_physics.ToJson(o.score);
  out["oracle"]["kind"] = "physics (MuJoCo predicts the objects from the previous model step's state and the recorded actions)";
  out["by_type"] = nlohmann::json::object();
  out["by_type_detail"] = nlohmann::json::object();
  // The target's scope: types on which copy-last (a detector of change) is at most 0.6.
  Scores target;
  std::vector<std::string> target_types;
  for (const auto& [type, ts] : by_type) {
    const std::string name = ViolationName(type);
    const nlohmann::json model_scores = ts.model.ToJson(o.score);
    out["by_type"][name] = model_scores["pairwise_accuracy"];
    nlohmann::json aligned = {{"offsets", nlohmann::json::array()}};
    const char* keys[4] = {"model_impossible", "model_possible", "copy_last_impossible", "copy_last_possible"};
    for (int a = 0; a < 4; ++a) aligned[keys[a]] = nlohmann::json::array();
    for (size_t r = 0; r < ts.aligned_n.size(); ++r) {
      if (ts.aligned_n[r] == 0) continue;
      aligned["offsets"].push_back(static_cast<int>(r) - TypeScores::kBefore);
      for (int a = 0; a < 4; ++a) aligned[keys[a]].push_back(ts.aligned[a][r] / ts.aligned_n[r]);
    }
    const nlohmann::json copy = ts.copy_last.ToJson(o.score);
    const bool in_target = copy["pairwise_accuracy"].get<double>() <= 0.6;
    out["by_type_detail"][name] = {
        {"pairs", ts.pairs},
        {"model", model_scores},
        {"copy_last", copy},
        {"pixel", ts.pixel.ToJson(o.score)},
        {"oracle", ts.physics.ToJson(o.score)},
        {"mean_pixel_change", {{"possible", ts.pixel_change_possible / ts.pairs}, {"impossible", ts.pixel_change_impossible / ts.pairs}}},
        {"copy_last_at_most_0_6", in_target},
        {"aligned_at_violation", aligned}};
    if (in_target) {
      target_types.push_back(name);
      target.Append(ts.model);
    }
  }
  out["target"] = {{"types", target_types}};
  if (!target.impossible_max.empty()) {
    const nlohmann::json t = target.ToJson(o.score);
    out["target"]["pairwise_accuracy"] = t["pairwise_accuracy"];
    out["target"]["auroc"] = t["auroc"];
    out["target"]["met"] = t["pairwise_accuracy"].get<double>() >= 0.9 && t["auroc"].get<double>() >= 0.9;
  }
  if (!o.clips.empty()) out["clips"] = o.clips.string();
  out["per_pair"] = per_pair;
  return out;
}

}  // namespace embody::adapt
