// --config on the programs (adapt/core/program_options.h): a JSON file of options, the command line
// winning over it, unknown keys refused, and the stored options reading back to the same values.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include "adapt/core/program_options.h"

namespace embody::adapt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Options {
  int steps = 100;
  double lr = 1e-3;
  std::string name = "franka";
  std::vector<std::string> cameras;
  bool freeze = false, bench = false, prefetch = true;
  std::uint64_t seed = 0;
};

// A program's app as the tools build theirs: defaults shown, an action flag kept out of configs.
std::unique_ptr<CLI::App> MakeApp(Options& o) {
  auto app = std::make_unique<CLI::App>("test");
  app->add_option("--steps", o.steps, "steps")->capture_default_str();
  app->add_option("--lr", o.lr, "lr")->capture_default_str();
  app->add_option("--embodiment", o.name, "robot")->capture_default_str();
  app->add_option("--camera", o.cameras, "cameras")->expected(1, -1);
  app->add_option("--seed", o.seed, "seed")->capture_default_str();
  app->add_flag("--freeze-trunk", o.freeze, "freeze");
  app->add_flag("--bench", o.bench, "an action")->configurable(false);
  app->add_flag("--prefetch,!--no-prefetch", o.prefetch, "a flag whose absence means: decide");
  AddConfigOption(*app);
  return app;
}

class ProgramOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("embody_program_options_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& text) {
    const auto path = dir_ / ("config" + std::to_string(files_++) + ".json");
    std::ofstream(path) << text;
    return path.string();
  }
  void Parse(CLI::App& app, std::vector<std::string> args) {
    args.insert(args.begin(), "prog");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
  }
  fs::path dir_;
  int files_ = 0;
};

TEST_F(ProgramOptionsTest, FileSetsOptionsAndTheCommandLineWins) {
  Options o;
  auto app = MakeApp(o);
  const auto file = Write(R"({"steps": 1500, "lr": 0.0005, "camera": ["camera0", "camera1"], "freeze-trunk": true, "seed": 12345678901})");
  Parse(*app, {"--config", file, "--steps", "7"});
  EXPECT_EQ(o.steps, 7);  // the command line's
  EXPECT_DOUBLE_EQ(o.lr, 5e-4);
  EXPECT_EQ(o.cameras, (std::vector<std::string>{"camera0", "camera1"}));
  EXPECT_TRUE(o.freeze);
  EXPECT_EQ(o.seed, 12345678901ull);  // integers read exactly, not through a double's printing
  EXPECT_EQ(o.name, "franka");        // not in the file: the default
}

TEST_F(ProgramOptionsTest, UnknownKeyAndBadFileAreRefused) {
  {
    Options o;
    auto app = MakeApp(o);
    try {
      Parse(*app, {"--config", Write(R"({"stepz": 3})")});
      FAIL() << "an unknown key was accepted";
    } catch (const CLI::ParseError& e) {
      EXPECT_THAT(e.what(), HasSubstr("stepz"));
    }
  }
  for (const std::string text : {"[1, 2]", "{not json", R"({"camera": [["a"]]})"}) {
    Options o;
    auto app = MakeApp(o);
    EXPECT_THROW(Parse(*app, {"--config", Write(text)}), CLI::ParseError) << text;
  }
  Options o;
  auto app = MakeApp(o);
  EXPECT_THROW(Parse(*app, {"--config", (dir_ / "missing.json").string()}), CLI::ParseError);
}

TEST_F(ProgramOptionsTest, StoredOptionsReadBackToTheSameRun) {
  Options first;
  auto app = MakeApp(first);
  Parse(*app, {"--steps", "42", "--camera", "camera1", "--freeze-trunk", "--bench", "--seed", "9", "--lr", "2.5e-4"});
  const nlohmann::json stored = ProgramOptions(*app);
  EXPECT_EQ(stored["steps"], 42);
  ASSERT_TRUE(stored["lr"].is_number()) << stored["lr"];  // a float written with an exponent is a number too
  EXPECT_DOUBLE_EQ(stored["lr"].get<double>(), 2.5e-4);
  EXPECT_EQ(stored["embodiment"], "franka");  // a default is stored too
  EXPECT_EQ(stored["camera"], nlohmann::json::array({"camera1"}));
  EXPECT_EQ(stored["freeze-trunk"], true);
  EXPECT_FALSE(stored.contains("bench")) << "an action flag must not be replayed by --config";
  EXPECT_FALSE(stored.contains("prefetch")) << "a flag not given stays not given";
  EXPECT_FALSE(stored.contains("config"));
  EXPECT_FALSE(stored.contains("help"));

  Options again;
  auto replay = MakeApp(again);
  Parse(*replay, {"--config", Write(stored.dump())});
  EXPECT_EQ(again.steps, 42);
  EXPECT_DOUBLE_EQ(again.lr, first.lr);
  EXPECT_EQ(again.cameras, first.cameras);
  EXPECT_TRUE(again.freeze);
  EXPECT_FALSE(again.bench);
  EXPECT_EQ(again.seed, 9u);
  EXPECT_EQ(ProgramOptions(*replay), stored);

  // An output that stores the options (a results JSON, metrics.json) reads as those options.
  Options from_output;
  auto rerun = MakeApp(from_output);
  Parse(*rerun, {"--config", Write(nlohmann::json{{"success_rate", 0.5}, {"options", stored}}.dump())});
  EXPECT_EQ(from_output.steps, 42);
  EXPECT_EQ(ProgramOptions(*rerun), stored);
}

TEST_F(ProgramOptionsTest, ANegatedFlagReadsBack) {
  Options first;
  auto app = MakeApp(first);
  Parse(*app, {"--no-prefetch"});
  EXPECT_FALSE(first.prefetch);
  const nlohmann::json stored = ProgramOptions(*app);
  EXPECT_EQ(stored["prefetch"], false);
  Options again;
  auto replay = MakeApp(again);
  Parse(*replay, {"--config", Write(stored.dump())});
  EXPECT_FALSE(again.prefetch);
  EXPECT_EQ(replay->count("--prefetch"), 1u) << "given in the file counts as given";
}

TEST_F(ProgramOptionsTest, AnActionInTheFileIsRefused) {
  Options o;
  auto app = MakeApp(o);
  try {
    Parse(*app, {"--config", Write(R"({"bench": true})")});
    FAIL() << "an action flag was taken from a file";
  } catch (const CLI::ParseError& e) {
    EXPECT_THAT(e.what(), HasSubstr("\"bench\" is an action"));
  }
  EXPECT_FALSE(o.bench);
}

}  // namespace
}  // namespace embody::adapt
