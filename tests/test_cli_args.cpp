// The command-line parser: --name value, --name=value, flags, positionals and the errors.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/train_options.h"
#include "core/error.h"
#include "test_helpers.h"

namespace {

using bp::cli::Args;

using bp::test::expect_error;
using bp::test::expect_error_all;

const std::set<std::string> kValues = {"lr", "epochs", "seed", "model"};
const std::set<std::string> kFlags = {"verbose", "resume"};

Args parse(const std::vector<std::string>& argv) { return Args(argv, kValues, kFlags); }

TEST(CliArgs, SeparateValue) {
  const Args a = parse({"--lr", "0.05", "--model", "dense"});
  EXPECT_TRUE(a.has("lr"));
  EXPECT_EQ(a.get("lr", ""), "0.05");
  EXPECT_EQ(a.get("model", ""), "dense");
  EXPECT_DOUBLE_EQ(a.get_double("lr", 0.1), 0.05);
}

TEST(CliArgs, InlineValue) {
  const Args a = parse({"--epochs=12", "--model=models/x.json", "--seed="});
  EXPECT_EQ(a.get_int("epochs", 0), 12);
  EXPECT_EQ(a.get("model", ""), "models/x.json");
  EXPECT_TRUE(a.has("seed"));
  EXPECT_EQ(a.get("seed", "fallback"), "");
}

TEST(CliArgs, InlineValueMayContainEquals) {
  const Args a = parse({"--model=a=b"});
  EXPECT_EQ(a.get("model", ""), "a=b");
}

TEST(CliArgs, LaterValueWins) {
  const Args a = parse({"--epochs", "3", "--epochs=4"});
  EXPECT_EQ(a.get_int("epochs", 0), 4);
}

TEST(CliArgs, Flags) {
  const Args a = parse({"--verbose"});
  EXPECT_TRUE(a.flag("verbose"));
  EXPECT_TRUE(a.has("verbose"));
  EXPECT_FALSE(a.flag("resume"));
  EXPECT_FALSE(a.has("resume"));
  EXPECT_FALSE(a.has("lr"));
}

TEST(CliArgs, Positionals) {
  const Args a = parse({"train", "--verbose", "run1", "--lr", "0.2", "-x", "--", "last"});
  EXPECT_EQ(a.positionals(), (std::vector<std::string>{"train", "run1", "-x", "--", "last"}));
  EXPECT_TRUE(a.flag("verbose"));
  EXPECT_DOUBLE_EQ(a.get_double("lr", 0), 0.2);
}

TEST(CliArgs, FlagDoesNotConsumeTheNextArgument) {
  const Args a = parse({"--resume", "ckpt"});
  EXPECT_TRUE(a.flag("resume"));
  EXPECT_EQ(a.positionals(), std::vector<std::string>{"ckpt"});
}

TEST(CliArgs, FallbacksWhenAbsent) {
  const Args a = parse({});
  EXPECT_EQ(a.get("model", "dense"), "dense");
  EXPECT_EQ(a.get_int("epochs", 7), 7);
  EXPECT_EQ(a.get_int64("seed", -1), -1);
  EXPECT_DOUBLE_EQ(a.get_double("lr", 0.125), 0.125);
  EXPECT_TRUE(a.positionals().empty());
}

TEST(CliArgs, UnknownOptionListsKnownOptions) {
  const auto body = [] { parse({"--lrate", "0.1"}); };
  expect_error(body, "unknown option --lrate");
  for (const char* known : {"--lr", "--epochs", "--seed", "--model", "--verbose", "--resume"})
    expect_error(body, known);
}

TEST(CliArgs, FlagWithInlineValueIsRejected) {
  expect_error([] { parse({"--verbose=1"}); }, "--verbose");
}

TEST(CliArgs, MissingValue) {
  expect_error([] { parse({"--model"}); }, "option --model needs a value");
  expect_error([] { parse({"train", "--epochs"}); }, "option --epochs needs a value");
}

// `--epochs --out X` used to take "--out" as the number of epochs (and X as a positional).
TEST(CliArgs, ValueOptionFollowedByAnOptionHasNoValue) {
  expect_error_all([] { parse({"--epochs", "--model", "x"}); },
                   {"option --epochs needs a value but got none", "--model"});
  expect_error([] { parse({"--model", "--verbose"}); }, "option --model needs a value but got none");
  // A value that starts with -- takes the inline form; a negative number is still a value.
  EXPECT_EQ(parse({"--model=--odd"}).get("model", ""), "--odd");
  EXPECT_EQ(parse({"--epochs", "-3"}).get_int("epochs", 0), -3);
}

TEST(CliArgs, GetUint64RejectsNegativeAndNonNumeric) {
  EXPECT_EQ(parse({"--seed", "18446744073709551615"}).get_uint64("seed", 0), 18446744073709551615ULL);
  EXPECT_EQ(parse({"--seed", "0"}).get_uint64("seed", 7), 0u);
  EXPECT_EQ(parse({}).get_uint64("seed", 7), 7u);
  // strtoull turns "-1" into 2^64 - 1 without complaint.
  expect_error([] { parse({"--seed", "-1"}).get_uint64("seed", 0); },
               "--seed expects a non-negative integer, got \"-1\"");
  expect_error([] { parse({"--seed", " -1"}).get_uint64("seed", 0); }, "non-negative integer");
  expect_error([] { parse({"--seed", "abc"}).get_uint64("seed", 0); }, "non-negative integer");
  expect_error([] { parse({"--seed", "3x"}).get_uint64("seed", 0); }, "non-negative integer");
  expect_error([] { parse({"--seed="}).get_uint64("seed", 0); }, "non-negative integer");
  expect_error([] { parse({"--seed", "99999999999999999999"}).get_uint64("seed", 0); }, "out of range");
}

TEST(CliArgs, GetIntRejectsTrailingGarbage) {
  const Args a = parse({"--epochs", "12x", "--seed", ""});
  expect_error([&] { a.get_int("epochs", 0); }, "--epochs expects an integer, got \"12x\"");
  expect_error([&] { a.get_int64("epochs", 0); }, "expects an integer");
  expect_error([&] { a.get_int64("seed", 0); }, "expects an integer");
}

TEST(CliArgs, GetIntRange) {
  EXPECT_EQ(parse({"--epochs", "-3"}).get_int("epochs", 0), -3);
  EXPECT_EQ(parse({"--epochs", "2147483647"}).get_int("epochs", 0), 2147483647);
  expect_error([] { parse({"--epochs", "2147483648"}).get_int("epochs", 0); }, "out of range");
  EXPECT_EQ(parse({"--seed", "9223372036854775807"}).get_int64("seed", 0), 9223372036854775807LL);
  // strtoll clamps; the parser must not silently accept the clamped value.
  expect_error([] { parse({"--seed", "99999999999999999999"}).get_int64("seed", 0); },
               "out of range");
}

TEST(CliArgs, GetDouble) {
  EXPECT_DOUBLE_EQ(parse({"--lr=1e-3"}).get_double("lr", 0), 1e-3);
  EXPECT_DOUBLE_EQ(parse({"--lr", "-2.5"}).get_double("lr", 0), -2.5);
  EXPECT_DOUBLE_EQ(parse({"--lr", "3"}).get_double("lr", 0), 3.0);
  expect_error([] { parse({"--lr", "0.1.2"}).get_double("lr", 0); },
               "--lr expects a number, got \"0.1.2\"");
  expect_error([] { parse({"--lr", "abc"}).get_double("lr", 0); }, "expects a number");
  expect_error([] { parse({"--lr="}).get_double("lr", 0); }, "expects a number");
}

// The training options checked on their own, before any data is loaded.
bp::TrainConfig apply(const std::vector<std::string>& argv) {
  bp::TrainConfig c;
  bp::cli::apply_training_options(
      Args(argv, bp::cli::training_value_options(), {"no-progress", "no-graphs"}), c);
  return c;
}

TEST(TrainOptions, DefaultsAndValidValuesPass) {
  const bp::TrainConfig d = apply({});
  EXPECT_EQ(d.train_limit, -1);
  EXPECT_EQ(d.test_limit, -1);
  const bp::TrainConfig c = apply({"--train-limit", "1", "--test-limit", "500", "--lr", "1e-3",
                                   "--patience", "0", "--seed", "18446744073709551615"});
  EXPECT_EQ(c.train_limit, 1);
  EXPECT_EQ(c.test_limit, 500);
  EXPECT_DOUBLE_EQ(c.lr, 1e-3);
  EXPECT_EQ(c.patience, 0);
  EXPECT_EQ(c.seed, 18446744073709551615ULL);
}

TEST(TrainOptions, LimitsMustKeepAnImage) {
  // -3 used to mean "all 60000", 0 an empty test set.
  expect_error([] { apply({"--train-limit", "-3"}); }, "--train-limit must be >= 1");
  expect_error([] { apply({"--train-limit", "-1"}); }, "--train-limit must be >= 1");
  expect_error([] { apply({"--test-limit", "0"}); }, "--test-limit must be >= 1");
}

TEST(TrainOptions, LearningRateMustBeFiniteAndPositive) {
  for (const char* lr : {"0", "-0.1", "nan", "inf", "-inf", "1e999"}) {
    SCOPED_TRACE(lr);
    expect_error([&] { apply({"--lr", lr}); }, "--lr must be a finite number > 0");
  }
}

TEST(TrainOptions, PatienceMustNotBeNegative) {
  expect_error([] { apply({"--patience", "-1"}); }, "--patience must be >= 0");
}

TEST(TrainOptions, SeedMustBeANonNegativeInteger) {
  expect_error([] { apply({"--seed", "-1"}); }, "--seed expects a non-negative integer");
  expect_error([] { apply({"--seed", "one"}); }, "--seed expects a non-negative integer");
}

}  // namespace
