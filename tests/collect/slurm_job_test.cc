// `simcollect slurm` without a cluster: the scripts it writes and what it refuses (the real array job,
// merge and retry run in tests/cluster/slurm_test.sh on a local Slurm).
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collect/slurm.h"

namespace embody::collect {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SlurmJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("embody_slurm_job_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.robot = "franka";
    config_.episodes = 10;
    config_.steps = 6;
    config_.seed = 4;
    config_.out = (dir_ / "franka.h5").string();
    options_.shards = 3;
    options_.simcollect = "/opt/embody/bin/simcollect";
    options_.partition = "gpu";
    options_.sbatch = {"--qos=long"};
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Error(const CollectConfig& c, const SlurmOptions& o) {
    try {
      WriteSlurmJob(c, o);
    } catch (const CollectError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
  CollectConfig config_;
  SlurmOptions options_;
};

TEST_F(SlurmJobTest, WritesAnArrayScriptAMergeScriptAndTheOptions) {
  const SlurmJob job = WriteSlurmJob(config_, options_);
  EXPECT_EQ(job.dir, dir_ / "franka.slurm");
  const std::string collect = ReadAll(job.collect_script), merge = ReadAll(job.merge_script);
  EXPECT_THAT(collect, HasSubstr("#SBATCH --array=0-2\n"));
  EXPECT_THAT(collect, HasSubstr("#SBATCH --partition=gpu\n"));
  EXPECT_THAT(collect, HasSubstr("#SBATCH --qos=long\n"));
  // The shard count is written into the script: a task resubmitted alone still takes its 1/3.
  EXPECT_THAT(collect, HasSubstr("--shard \"${SLURM_ARRAY_TASK_ID}/3\""));
  EXPECT_THAT(collect, HasSubstr("--resume"));
  EXPECT_THAT(collect, HasSubstr("'/opt/embody/bin/simcollect' --config '" + job.options.string() + "'"));
  for (const auto& shard : job.shards) EXPECT_THAT(merge, HasSubstr("'" + shard.string() + "'"));
  EXPECT_THAT(merge, HasSubstr("merge '" + (dir_ / "franka.h5").string() + "'"));
  // The options file reads back as the same collection (through simcollect's own --config reader).
  std::ifstream in(job.options);
  CollectConfig back;
  back.UpdateFromJson(nlohmann::json::parse(in));
  EXPECT_EQ(back.Identity(), config_.Identity());
  // Writing again with the same options is allowed (resubmission).
  EXPECT_EQ(Error(config_, options_), "");
}

TEST_F(SlurmJobTest, RefusesWhatWouldFailOnTheCluster) {
  CollectConfig c = config_;
  c.robot = "frankaa";
  EXPECT_THAT(Error(c, options_), HasSubstr("--robot"));
  c = config_;
  c.shard_count = 2;
  EXPECT_THAT(Error(c, options_), HasSubstr("drop --shard"));
  SlurmOptions o = options_;
  o.shards = 11;
  EXPECT_THAT(Error(config_, o), HasSubstr("more than the 10 episodes"));
  EXPECT_FALSE(fs::exists(dir_ / "franka.slurm"));  // nothing written by a refusal

  WriteSlurmJob(config_, options_);
  c = config_;
  c.seed = 5;
  EXPECT_THAT(Error(c, options_), HasSubstr("other options"));
  std::ofstream(dir_ / "franka.slurm" / "shard0of3.h5") << "x";
  o = options_;
  o.shards = 4;
  EXPECT_THAT(Error(config_, o), HasSubstr("3-way split"));
  o.overwrite = true;  // --overwrite-job starts over
  EXPECT_EQ(Error(config_, o), "");
  EXPECT_FALSE(fs::exists(dir_ / "franka.slurm" / "shard0of3.h5"));
  std::ofstream(dir_ / "franka.h5") << "x";
  EXPECT_THAT(Error(config_, o), HasSubstr("already exists"));
}

// --train: a training job script (pretrain then adapt, srun ranks, absolute paths) and the chain
// collect -> merge -> train in submit.sh, each afterok on the one before; both parse as bash.
TEST_F(SlurmJobTest, TrainingJobAfterTheMergeWithExplicitPaths) {
  const fs::path bin = dir_ / "bin";
  fs::create_directories(bin);
  for (const char* b : {"simcollect", "pretrain", "adapt"}) std::ofstream(bin / b) << "";
  SlurmOptions o = options_;
  o.simcollect = bin / "simcollect";
  o.train = true;
  o.train_tasks = 4;
  o.models = dir_ / "models";
  o.adapt_args = "--train-decoder";
  const SlurmJob job = WriteSlurmJob(config_, o);
  ASSERT_EQ(job.train_script, job.dir / "train.sbatch");
  const std::string train = ReadAll(job.train_script), submit = ReadAll(job.submit_script);
  EXPECT_THAT(train, HasSubstr("#SBATCH --ntasks=4\n"));
  EXPECT_THAT(train, HasSubstr("#SBATCH --partition=gpu\n"));
  EXPECT_THAT(train, HasSubstr("one filesystem on every node"));
  const std::string data = "'" + (dir_ / "franka.h5").string() + "'", encoder = "'" + (dir_ / "models" / "encoder.pt").string() + "'";
  EXPECT_THAT(train, HasSubstr("srun '" + (bin / "pretrain").string() + "' --data " + data + " --out " + encoder + "\n"));
  EXPECT_THAT(train, HasSubstr("srun '" + (bin / "adapt").string() + "' --embodiment 'franka' --data " + data + " --encoder " + encoder + " --out '" +
                               (dir_ / "models" / "franka").string() + "' --train-decoder\n"));
  EXPECT_LT(train.find("pretrain"), train.find("/adapt'"));  // stage one before stage two
  EXPECT_THAT(submit, HasSubstr("merge=$(sbatch --parsable --dependency=afterok:\"${collect%%;*}\" '" + job.merge_script.string() + "')"));
  EXPECT_THAT(submit, HasSubstr("train=$(sbatch --parsable --dependency=afterok:\"${merge%%;*}\" '" + job.train_script.string() + "')"));
  for (const fs::path& script : {job.train_script, job.submit_script, job.collect_script, job.merge_script}) {
    EXPECT_EQ(0, std::system(("bash -n '" + script.string() + "'").c_str())) << script;
  }
  // An existing encoder: stage two only.
  o.encoder = dir_ / "models" / "mine.pt";
  fs::create_directories(dir_ / "models");
  std::ofstream(o.encoder) << "";
  EXPECT_EQ(Error(config_, o), "");
  const std::string only_adapt = ReadAll(job.train_script);
  EXPECT_THAT(only_adapt, Not(HasSubstr("/pretrain'")));
  EXPECT_THAT(only_adapt, HasSubstr("--encoder '" + o.encoder.string() + "'"));
  // Refused: no pretrain/adapt beside simcollect, an encoder that is not there. Without --train the
  // training script is gone and submit.sh stops at the merge.
  o.encoder = dir_ / "none.pt";
  EXPECT_THAT(Error(config_, o), HasSubstr("--encoder " + (dir_ / "none.pt").string() + " does not exist"));
  o.encoder.clear();
  fs::remove(bin / "adapt");
  EXPECT_THAT(Error(config_, o), HasSubstr("is not there (a build without LibTorch?)"));
  EXPECT_EQ(Error(config_, options_), "");
  EXPECT_FALSE(fs::exists(job.dir / "train.sbatch"));
  EXPECT_THAT(ReadAll(job.submit_script), Not(HasSubstr("train")));
}

TEST(SlurmShardList, ParsesAndChecks) {
  EXPECT_EQ(ParseShardList("2,0", 3), (std::vector<int>{2, 0}));
  EXPECT_THROW(ParseShardList("3", 3), CollectError);
  EXPECT_THROW(ParseShardList("1,x", 3), CollectError);
  EXPECT_THROW(ParseShardList("", 3), CollectError);
}

}  // namespace
}  // namespace embody::collect
