// A small, portable, seeded random generator (SplitMix64). Every draw in collection comes from one
// of these, derived from (seed, episode, attempt), so the same seed gives the same data whatever
// the number of workers or shards. Distributions are written here (not <random>'s, whose output
// differs between standard libraries).
#pragma once

#include <cmath>
#include <cstdint>

namespace embody::collect {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  /// The generator for one attempt at one episode of a run.
  static Rng ForEpisode(std::uint64_t seed, std::int64_t episode, int attempt) {
    Rng mix(seed ^ 0x9E3779B97F4A7C15ull);
    std::uint64_t s = mix.Next() ^ (static_cast<std::uint64_t>(episode) * 0xD1B54A32D192ED03ull);
    s = Rng(s).Next() ^ (static_cast<std::uint64_t>(attempt) * 0xABC98388FB8FAC03ull);
    return Rng(Rng(s).Next());
  }

  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  /// Uniform integer in [lo, hi].
  int Int(int lo, int hi) { return lo + static_cast<int>(Next() % static_cast<std::uint64_t>(hi - lo + 1)); }
  bool Bernoulli(double p) { return Uniform() < p; }
  /// Normal(mean, stddev) by Box-Muller.
  double Normal(double mean, double stddev) {
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

}  // namespace embody::collect
