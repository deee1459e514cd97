// Tests for collect/randomizer.cc, collect/rng.h and collect/config.cc.
#include "collect/randomizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/config.h"
#include "collect/episode.h"
#include "sim/world.h"

namespace embody::collect {
namespace {

using ::testing::HasSubstr;

// Tests that generators are reproducible and that episodes and attempts get different streams.
TEST(RngTest, SeededAndIndependentPerEpisode) {
  Rng a = Rng::ForEpisode(7, 3, 0), b = Rng::ForEpisode(7, 3, 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Next(), b.Next());
  EXPECT_NE(Rng::ForEpisode(7, 3, 0).Next(), Rng::ForEpisode(7, 4, 0).Next());
  EXPECT_NE(Rng::ForEpisode(7, 3, 0).Next(), Rng::ForEpisode(7, 3, 1).Next());
  EXPECT_NE(Rng::ForEpisode(7, 3, 0).Next(), Rng::ForEpisode(8, 3, 0).Next());
  Rng r(1);
  for (int i = 0; i < 1000; ++i) {
    const double u = r.Uniform(-2, 3);
    ASSERT_GE(u, -2);
    ASSERT_LT(u, 3);
  }
}

class RandomizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    embodiment_ = robots::FindEmbodiment("franka");
    nominal_ = sim::LoadModelFile(embodiment_.mjcf);
    randomizer_ = std::make_unique<SceneRandomizer>(nominal_.get(), embodiment_);
  }
  robots::Embodiment embodiment_;
  sim::MjModelPtr nominal_;
  std::unique_ptr<SceneRandomizer> randomizer_;
};

// Tests that the scene's segments and objects are found.
TEST_F(RandomizerTest, FindsSegmentsAndObjects) {
  EXPECT_EQ(8u, randomizer_->segments().size());       // base + 7 links with joints
  EXPECT_EQ(3u, randomizer_->object_bodies().size());  // cup, box, ball
}

// Tests that default draws vary between episodes and stay inside the documented default ranges.
TEST_F(RandomizerTest, DefaultDrawsVaryWithinRanges) {
  std::vector<double> fovy, mass, segment, object_x;
  for (int episode = 0; episode < 50; ++episode) {
    Rng rng = Rng::ForEpisode(1, episode, 0);
    const Draw d = randomizer_->Sample(RandomizationConfig::All(Level::kDefault), 2, &rng);
    ASSERT_EQ(2u, d.cameras.size());
    for (const auto& c : d.cameras) fovy.push_back(c.fovy_deg);
    mass.push_back(d.mass_scale);
    for (double s : d.segment_scale) segment.push_back(s);
    for (const auto& o : d.objects) object_x.push_back(o.x);
    for (size_t i = 0; i < d.objects.size(); ++i) {
      for (size_t j = i + 1; j < d.objects.size(); ++j) {
        EXPECT_GT(std::hypot(d.objects[i].x - d.objects[j].x, d.objects[i].y - d.objects[j].y), 0.12);
      }
    }
  }
  auto range = [](const std::vector<double>& v) {
    return std::make_pair(*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  };
  EXPECT_GE(range(fovy).first, 40);
  EXPECT_LE(range(fovy).second, 55);
  EXPECT_GT(range(fovy).second - range(fovy).first, 8);  // it varies
  EXPECT_GE(range(mass).first, 0.9);
  EXPECT_LE(range(mass).second, 1.1);
  EXPECT_GT(range(mass).second - range(mass).first, 0.1);
  EXPECT_GE(range(segment).first, 0.95);
  EXPECT_LE(range(segment).second, 1.05);
  EXPECT_GE(range(object_x).first, 0.4);
  EXPECT_LE(range(object_x).second, 0.7);
}

// Tests that "light" (simcollect's default) varies every group a little around the framed nominal
// view: narrower than "default", wider than "none", the first camera within a few cm and degrees of
// the nominal one.
TEST_F(RandomizerTest, LightJittersAroundTheFramedView) {
  EXPECT_EQ(Level::kLight, RandomizationConfig{}.camera);
  EXPECT_EQ(Level::kLight, ParseLevel("light"));
  EXPECT_EQ("light", LevelName(Level::kLight));
  Rng nominal_rng(1);
  const Draw none = randomizer_->Sample(RandomizationConfig::All(Level::kNone), 1, &nominal_rng);
  std::vector<double> mass, segment, camera_offset, fovy, object_x;
  for (int episode = 0; episode < 50; ++episode) {
    Rng rng = Rng::ForEpisode(1, episode, 0);
    const Draw d = randomizer_->Sample(RandomizationConfig::All(Level::kLight), 1, &rng);
    mass.push_back(d.mass_scale);
    for (double s : d.segment_scale) segment.push_back(s);
    double offset = 0;
    for (int k = 0; k < 3; ++k) offset += std::pow(d.cameras[0].position[k] - none.cameras[0].position[k], 2);
    camera_offset.push_back(std::sqrt(offset));
    fovy.push_back(d.cameras[0].fovy_deg);
    for (const auto& o : d.objects) object_x.push_back(o.x);
  }
  auto range = [](const std::vector<double>& v) {
    return std::make_pair(*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  };
  EXPECT_GE(range(mass).first, 0.95);
  EXPECT_LE(range(mass).second, 1.05);
  EXPECT_GT(range(mass).second - range(mass).first, 0.03);  // it varies
  EXPECT_GE(range(segment).first, 0.98);
  EXPECT_LE(range(segment).second, 1.02);
  EXPECT_LT(range(camera_offset).second, 0.2);  // metres: a jitter, not an orbit (default moves it by up to ~1 m)
  EXPECT_GT(range(camera_offset).second, 0.01);
  EXPECT_GE(range(fovy).first, 43);
  EXPECT_LE(range(fovy).second, 47);
  EXPECT_GE(range(object_x).first, 0.42);
  EXPECT_LE(range(object_x).second, 0.65);
}

// Tests that "wide" reaches beyond the default ranges and "none" is the nominal scene.
TEST_F(RandomizerTest, WideIsWiderAndNoneIsNominal) {
  double widest = 1;
  for (int episode = 0; episode < 50; ++episode) {
    Rng rng = Rng::ForEpisode(2, episode, 0);
    widest = std::max(widest, randomizer_->Sample(RandomizationConfig::All(Level::kWide), 1, &rng).gain_scale);
  }
  EXPECT_GT(widest, 1.1);
  Rng rng(3);
  const Draw none = randomizer_->Sample(RandomizationConfig::All(Level::kNone), 1, &rng);
  EXPECT_EQ(1.0, none.mass_scale);
  EXPECT_EQ(0.0, none.base_dx);
  sim::World world(sim::MjModelPtr(mj_copyModel(nullptr, nominal_.get())));
  randomizer_->ApplyToModel(none, world.mutable_model());
  const int link4 = sim::RequireId(nominal_.get(), mjOBJ_BODY, "franka_link4");
  EXPECT_EQ(nominal_->body_pos[3 * link4], world.model()->body_pos[3 * link4]);
}

// Tests that applying a draw starts from the nominal model: A then B equals B alone, and that a
// draw survives the JSON round trip stored in the dataset.
TEST_F(RandomizerTest, ApplyStartsFromNominalAndJsonRoundTrips) {
  Rng ra(4), rb(5);
  const Draw a = randomizer_->Sample(RandomizationConfig::All(Level::kWide), 1, &ra);
  const Draw b = randomizer_->Sample(RandomizationConfig::All(Level::kWide), 1, &rb);
  sim::MjModelPtr ab(mj_copyModel(nullptr, nominal_.get())), only_b(mj_copyModel(nullptr, nominal_.get()));
  randomizer_->ApplyToModel(a, ab.get());
  randomizer_->ApplyToModel(b, ab.get());
  randomizer_->ApplyToModel(Draw::FromJson(b.ToJson()), only_b.get());
  for (int i = 0; i < 3 * nominal_->nbody; ++i) ASSERT_EQ(only_b->body_pos[i], ab->body_pos[i]);
  for (int i = 0; i < nominal_->nbody; ++i) ASSERT_EQ(only_b->body_mass[i], ab->body_mass[i]);
  for (int i = 0; i < 4 * nominal_->nmat; ++i) ASSERT_EQ(only_b->mat_rgba[i], ab->mat_rgba[i]);
  EXPECT_EQ(b.ToJson(), Draw::FromJson(b.ToJson()).ToJson());
  // Link lengths changed somewhere, within 10 %.
  const int link5 = sim::RequireId(nominal_.get(), mjOBJ_BODY, "franka_link5");
  const double ratio = only_b->body_pos[3 * link5 + 1] / nominal_->body_pos[3 * link5 + 1];
  EXPECT_NE(1.0, ratio);
  EXPECT_NEAR(1.0, ratio, 0.1 + 1e-9);
}

// Tests that bad options are refused with a message naming the option.
TEST(ConfigTest, BadOptionsAreNamed) {
  auto error = [](const std::function<void(CollectConfig*)>& change) {
    CollectConfig c;
    change(&c);
    try {
      c.Validate();
    } catch (const CollectError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ("", error([](CollectConfig*) {}));
  EXPECT_THAT(error([](CollectConfig* c) { c->episodes = 0; }), HasSubstr("--episodes must be positive"));
  EXPECT_THAT(error([](CollectConfig* c) { c->image_size = 300; }), HasSubstr("--image-size must be in 16..256"));
  EXPECT_THAT(error([](CollectConfig* c) { c->resume = c->overwrite = true; }), HasSubstr("exclude each other"));
  EXPECT_THAT(error([](CollectConfig* c) { c->layouts_per_scene = 0; }), HasSubstr("--layouts-per-scene must be in 1..64"));
  EXPECT_THAT(error([](CollectConfig* c) {
                c->layouts_per_scene = 2;
                c->layout_change = "some";
              }),
              HasSubstr("--layout-change must be all or one"));
  EXPECT_THAT(error([](CollectConfig* c) { c->layout_change = "one"; }), HasSubstr("--layout-change needs --layouts-per-scene"));
  int index = 0, count = 0;
  ParseShard("2/5", &index, &count);
  EXPECT_EQ(2, index);
  EXPECT_EQ(5, count);
  EXPECT_THROW(ParseShard("5/5", &index, &count), CollectError);
  EXPECT_THROW(ParseShard("a/b", &index, &count), CollectError);
  CollectConfig c;
  c.UpdateFromJson({{"robot", "ur5"}, {"image-size", 32}, {"randomize", "wide"}, {"randomize_camera", "none"}});
  EXPECT_EQ("ur5", c.robot);
  EXPECT_EQ(32, c.image_size);
  EXPECT_EQ(Level::kWide, c.randomization.lighting);
  EXPECT_EQ(Level::kNone, c.randomization.camera);
  // --layouts-per-scene is part of the data's identity only when set: older datasets' identities hold.
  EXPECT_FALSE(c.Identity().contains("layouts_per_scene"));
  c.UpdateFromJson({{"layouts-per-scene", 2}});
  EXPECT_EQ(2, c.Identity().at("layouts_per_scene").get<int>());
  EXPECT_EQ(2, CollectConfig::FromIdentity(c.Identity()).layouts_per_scene);
  EXPECT_FALSE(c.Identity().contains("layout_change"));
  c.UpdateFromJson({{"layout-change", "one"}});
  EXPECT_EQ("one", CollectConfig::FromIdentity(c.Identity()).layout_change);
  EXPECT_THROW(c.UpdateFromJson({{"episdoes", 5}}), CollectError);
  EXPECT_THROW(c.UpdateFromJson({{"steps", "many"}}), CollectError);
}

}  // namespace
}  // namespace embody::collect

namespace embody::collect {
namespace {

// Tests that with wide embodiment randomization (link lengths, base pose) every robot starts at home
// touching nothing: no contact involves a robot geom.
TEST(EmbodimentRandomizationTest, HomeIsCollisionFree) {
  for (const std::string robot : {"franka", "ur5", "humanoid"}) {
    CollectConfig c;
    c.robot = robot;
    c.randomization = RandomizationConfig::All(Level::kWide);
    EpisodeRunner runner(c, /*render=*/false);
    const mjModel* m = runner.world().model();
    const int base = sim::RequireId(m, mjOBJ_BODY, runner.embodiment().base_body);
    auto is_robot = [&](int geom) {
      for (int b = m->geom_bodyid[geom]; b > 0; b = m->body_parentid[b]) {
        if (b == base) return true;
      }
      return false;
    };
    for (int episode = 0; episode < 20; ++episode) {
      Rng rng = Rng::ForEpisode(9, episode, 0);
      runner.Prepare(runner.randomizer().Sample(c.randomization, 1, &rng));
      const mjData* d = runner.world().data();
      for (int i = 0; i < d->ncon; ++i) {
        EXPECT_FALSE(is_robot(d->contact[i].geom1) || is_robot(d->contact[i].geom2))
            << robot << " episode " << episode << ": " << mj_id2name(m, mjOBJ_GEOM, d->contact[i].geom1) << " touches "
            << mj_id2name(m, mjOBJ_GEOM, d->contact[i].geom2);
      }
    }
  }
}

}  // namespace
}  // namespace embody::collect
