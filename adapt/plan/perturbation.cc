#include "adapt/plan/perturbation.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

#include "adapt/core/error.h"

namespace embody::adapt {
namespace {

struct Kind {
  const char* name;
  const char* meaning;
  const char* unit;
  double nominal, fallback, lo, hi;  ///< the value that changes nothing, the default size, the allowed range
  bool integer;
};

const std::vector<Kind>& Kinds() {
  static const std::vector<Kind> kinds = {
      {"payload", "load on the hand (a 3 cm sphere at the end-effector site)", "kg", 0, 1.0, 0, 10, false},
      {"gains", "the actuators' position gains, times", "x", 1, 0.5, 0.05, 20, false},
      {"damping", "the joints' damping, times", "x", 1, 3, 0, 100, false},
      {"link", "the longest link (largest offset to a child body), times", "x", 1, 1.1, 0.5, 2, false},
      {"latency", "control steps between an action sent and its effect", "control steps", 0, 1, 0, 50, true},
      {"camera", "every camera turned about its vertical axis, knocked", "deg", 0, 5, -90, 90, false},
  };
  return kinds;
}

const Kind& Find(const std::string& name) {
  for (const Kind& k : Kinds()) {
    if (name == k.name) return k;
  }
  throw AdaptError("unknown perturbation '" + name + "'; known (NAME or NAME=VALUE):\n" + PerturbationHelp());
}

}  // namespace

nlohmann::json Perturbation::ToJson() const {
  if (!active()) return {{"name", "none"}};
  return {{"name", name}, {"value", value}, {"unit", PerturbationUnit(name)}};
}

std::string PerturbationHelp() {
  std::string s;
  char line[200];
  for (const Kind& k : Kinds()) {
    std::snprintf(line, sizeof line, "  %-8s %s (%s; default %g, nominal %g)\n", k.name, k.meaning, k.unit, k.fallback, k.nominal);
    s += line;
  }
  return s;
}

std::string PerturbationUnit(const std::string& name) { return Find(name).unit; }

Perturbation ParsePerturbation(const std::string& text) {
  const auto eq = text.find('=');
  const std::string name = text.substr(0, eq);
  const Kind& k = Find(name);
  Perturbation p{name, k.fallback};
  if (eq == std::string::npos) return p;
  const std::string value = text.substr(eq + 1);
  size_t used = 0;
  try {
    p.value = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !std::isfinite(p.value)) throw AdaptError("--perturb " + text + ": '" + value + "' is not a number");
  if (p.value < k.lo || p.value > k.hi || (k.integer && p.value != std::round(p.value))) {
    char range[160];
    std::snprintf(range, sizeof range, "--perturb %s: the value must be %s in [%g, %g] (%s)", name.c_str(), k.integer ? "a whole number" : "", k.lo,
                  k.hi, k.unit);
    throw AdaptError(range);
  }
  return p;
}

int LatencySteps(const Perturbation& p) { return p.name == "latency" ? static_cast<int>(std::lround(p.value)) : 0; }

void TurnCameras(collect::Draw* draw, double deg, bool in_place, const std::string& flag) {
  const double a = deg * M_PI / 180.0;
  for (sim::Camera& cam : draw->cameras) {
    if (!cam.name.empty()) throw AdaptError(flag + " needs free cameras; this one is the model's '" + cam.name + "'");
    std::array<double, 3>& moving = in_place ? cam.target : cam.position;
    const std::array<double, 3>& pivot = in_place ? cam.position : cam.target;
    const double dx = moving[0] - pivot[0], dy = moving[1] - pivot[1];
    moving[0] = pivot[0] + std::cos(a) * dx - std::sin(a) * dy;
    moving[1] = pivot[1] + std::sin(a) * dx + std::cos(a) * dy;
  }
}

void ApplyPerturbation(const Perturbation& p, const collect::SceneRandomizer& randomizer, collect::Draw* draw) {
  if (!p.active()) return;
  if (p.name == "payload") {
    draw->payload_kg += p.value;
  } else if (p.name == "gains") {
    draw->gain_scale *= p.value;
  } else if (p.name == "damping") {
    draw->damping_scale *= p.value;
  } else if (p.name == "link") {
    const std::size_t s = randomizer.LongestSegment();
    if (s >= draw->segment_scale.size()) throw AdaptError("--perturb link: the scene's draw has no scale for its robot's segments");
    draw->segment_scale[s] *= p.value;
  } else if (p.name == "camera") {
    TurnCameras(draw, p.value, /*in_place=*/true, "--perturb camera");
  } else if (p.name != "latency") {
    Find(p.name);  // throws, naming the known ones
  }
}

}  // namespace embody::adapt
