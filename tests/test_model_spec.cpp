// Model specs: the shipped models/dense.json, loading by name and by path, validation errors
// that name the JSON path and the reason, and the model_to_json -> parse_model round trip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model_spec.h"
#include "test_helpers.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using bp::test::expect_error;
using bp::test::expect_error_all;

// A scratch directory unique to this test and process, removed afterwards.
class ScratchDir {
 public:
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = dir_.path() / name;
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  bp::test::TempDir dir_{"bp_model_spec"};
};

// A small valid model to mutate in the rejection tests.
json valid_doc() {
  return json::parse(R"({
    "name": "tiny",
    "layers": [
      {"type": "flatten"},
      {"type": "dense", "units": 16},
      {"type": "relu"}
    ]
  })");
}

void parse(const json& doc) { bp::parse_model(doc, "test.json"); }

void expect_reference_dense(const bp::ModelSpec& spec) {
  EXPECT_EQ(spec.name, "dense");
  ASSERT_EQ(spec.layers.size(), 7u);
  const char* types[] = {"flatten", "dense", "relu", "dense", "relu", "dense", "relu"};
  const int units[] = {0, 1500, 0, 1000, 0, 500, 0};
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    EXPECT_EQ(spec.layers[i].type, types[i]);
    if (spec.layers[i].type == "dense") {
      EXPECT_EQ(spec.layers[i].units, units[i]);
      EXPECT_FALSE(spec.layers[i].bias);
      EXPECT_DOUBLE_EQ(spec.layers[i].init_std, 0.01);
      EXPECT_DOUBLE_EQ(spec.layers[i].l2, 0.0);
    }
  }
  EXPECT_EQ(spec.output.type, "dense");
  EXPECT_FALSE(spec.output.bias);
  EXPECT_DOUBLE_EQ(spec.output.init_std, 0.01);
  EXPECT_EQ(spec.training.batch_size, 128);
  EXPECT_DOUBLE_EQ(spec.training.lr, 0.1);
}

TEST(ModelSpecLoad, DenseByNameIsTheReferenceArchitecture) {
  expect_reference_dense(bp::load_model("dense"));
}

TEST(ModelSpecLoad, DenseByJsonPath) {
  expect_reference_dense(bp::load_model(bp::models_directory() + "/dense.json"));
}

TEST(ModelSpecLoad, ArbitraryJsonPath) {
  ScratchDir dir;
  json doc = valid_doc();
  doc["training"] = {{"batch_size", 32}, {"lr", 0.5}};
  const std::string path = dir.write("my_model.json", doc.dump());
  const bp::ModelSpec spec = bp::load_model(path);
  EXPECT_EQ(spec.name, "tiny");
  ASSERT_EQ(spec.layers.size(), 3u);
  EXPECT_EQ(spec.layers[1].units, 16);
  EXPECT_DOUBLE_EQ(spec.layers[1].init_std, 0.005);  // the documented default
  EXPECT_EQ(spec.training.batch_size, 32);
  EXPECT_DOUBLE_EQ(spec.training.lr, 0.5);
}

TEST(ModelSpecLoad, InvalidJsonTextNamesTheFile) {
  ScratchDir dir;
  const std::string path = dir.write("broken.json", "{\"name\": \"x\", \"layers\": [");
  expect_error_all([&] { bp::load_model(path); }, {path, "not valid JSON"});
}

TEST(ModelSpecLoad, MissingPathIsAnError) {
  expect_error([&] { bp::load_model("/nonexistent/dir/nothing.json"); }, "no such model file");
}

TEST(ModelSpecLoad, UnknownNameListsKnownModels) {
  expect_error_all([] { bp::load_model("no_such_model_xyz"); },
                   {"no_such_model_xyz", "known models:", "dense"});
}

TEST(ModelSpecLoad, ErrorsFromAFileArePrefixedWithItsPath) {
  ScratchDir dir;
  json doc = valid_doc();
  doc["layers"][1]["units"] = -3;
  const std::string path = dir.write("bad_units.json", doc.dump());
  expect_error([&] { bp::load_model(path); }, path + ": layers[1].units: must be > 0, got -3");
}

// nlohmann::json keeps the last of two equal keys: a model file must not say two things.
TEST(ModelSpecLoad, DuplicateKeyNamesTheFileAndTheJsonPath) {
  ScratchDir dir;
  const std::string top = dir.write("dup_top.json",
                                    R"({"name": "a", "layers": [], "name": "b"})");
  expect_error_all([&] { bp::load_model(top); }, {top + ": name: duplicate key \"name\""});
  // Deeper: the path counts array elements (objects and nested arrays before it included).
  const std::string deep = dir.write("dup_deep.json", R"({"name": "tiny", "layers": [
      {"type": "flatten"},
      {"type": "conv2d", "filters": 4, "kernel": [3, 3], "strides": [1, 1]},
      {"type": "dense", "units": 10, "bias": true, "units": 1000},
      {"type": "relu"}]})");
  expect_error_all([&] { bp::load_model(deep); },
                   {deep + ": layers[2].units: duplicate key \"units\""});
  const std::string nested = dir.write("dup_training.json",
      R"({"name": "tiny", "layers": [{"type": "relu"}], "training": {"lr": 0.1, "lr": 0.5}})");
  expect_error_all([&] { bp::load_model(nested); }, {nested + ": training.lr: duplicate key \"lr\""});
  // The same key in different objects is no duplicate.
  const std::string fine = dir.write("fine.json", R"({"name": "tiny", "layers": [
      {"type": "dense", "units": 3}, {"type": "dense", "units": 4}],
      "output": {"bias": true}, "training": {"batch_size": 8}})");
  EXPECT_EQ(bp::load_model(fine).layers.size(), 2u);
}

// The name becomes part of run-directory names: "../../etc/x" would put runs outside runs/.
TEST(ModelSpecLoad, NameWithPathSeparatorsOrDotDotNamesTheFile) {
  ScratchDir dir;
  for (const char* name : {"../../etc/x", "a/b", "..", "a\\b", "x..y"}) {
    SCOPED_TRACE(name);
    json doc = valid_doc();
    doc["name"] = name;
    const std::string path = dir.write("named.json", doc.dump());
    expect_error_all([&] { bp::load_model(path); }, {path + ": name:", "not a plain name"});
  }
  json doc = valid_doc();
  doc["name"] = "";
  expect_error([&] { parse(doc); }, "name: must not be empty");
  doc["name"] = "conv-v2_small.1";
  EXPECT_EQ(bp::parse_model(doc, "test.json").name, "conv-v2_small.1");
}

TEST(ModelSpecParse, ValidDocumentParses) {
  const bp::ModelSpec spec = bp::parse_model(valid_doc(), "test.json");
  EXPECT_EQ(spec.name, "tiny");
  EXPECT_EQ(spec.description, "");
  ASSERT_EQ(spec.layers.size(), 3u);
  EXPECT_EQ(spec.layers[0].type, "flatten");
  EXPECT_EQ(spec.layers[2].type, "relu");
  EXPECT_EQ(spec.training.batch_size, 128);
  EXPECT_DOUBLE_EQ(spec.training.lr, 0.1);
}

TEST(ModelSpecParse, RejectsUnknownTopLevelKey) {
  json doc = valid_doc();
  doc["optimiser"] = "adam";
  expect_error_all([&] { parse(doc); },
                   {"test.json: optimiser: ", "unknown key \"optimiser\"", "known keys:"});
}

TEST(ModelSpecParse, RejectsUnknownLayerType) {
  json doc = valid_doc();
  doc["layers"][1]["type"] = "conv";
  // "dense": the message lists the known types.
  expect_error_all([&] { parse(doc); }, {"layers[1].type", "unknown layer type \"conv\"", "dense"});
}

TEST(ModelSpecParse, RejectsMissingUnits) {
  json doc = valid_doc();
  doc["layers"][1].erase("units");
  expect_error([&] { parse(doc); }, "layers[1]: missing required field \"units\"");
}

TEST(ModelSpecParse, RejectsNegativeUnits) {
  json doc = valid_doc();
  doc["layers"][1]["units"] = -5;
  expect_error([&] { parse(doc); }, "layers[1].units: must be > 0, got -5");
}

TEST(ModelSpecParse, RejectsZeroUnits) {
  json doc = valid_doc();
  doc["layers"][1]["units"] = 0;
  expect_error([&] { parse(doc); }, "layers[1].units: must be > 0, got 0");
}

TEST(ModelSpecParse, RejectsNonIntegerUnits) {
  json doc = valid_doc();
  doc["layers"][1]["units"] = 1.5;
  expect_error([&] { parse(doc); }, "layers[1].units: expected an integer, got 1.5");
  doc["layers"][1]["units"] = "16";
  expect_error([&] { parse(doc); }, "layers[1].units: expected an integer");
}

TEST(ModelSpecParse, RejectsUnknownKeyInsideALayer) {
  json doc = valid_doc();
  doc["layers"][0] = {{"type", "dense"}, {"units", 8}, {"unitz", 8}};
  expect_error_all([&] { parse(doc); }, {"layers[0].unitz", "unknown key"});
}

TEST(ModelSpecParse, RejectsNegativeInitStd) {
  json doc = valid_doc();
  doc["init_std"] = -0.1;
  expect_error([&] { parse(doc); }, "init_std: must be >= 0");
  doc = valid_doc();
  doc["layers"][1]["init_std"] = -1;
  expect_error([&] { parse(doc); }, "layers[1].init_std: must be >= 0");
}

TEST(ModelSpecParse, RejectsLayersThatAreNotAnArray) {
  json doc = valid_doc();
  doc["layers"] = {{"type", "relu"}};
  expect_error([&] { parse(doc); }, "layers: expected an array");
  doc["layers"] = 3;
  expect_error([&] { parse(doc); }, "layers: expected an array");
}

TEST(ModelSpecParse, RejectsMissingLayers) {
  json doc = valid_doc();
  doc.erase("layers");
  expect_error([&] { parse(doc); }, "missing required field \"layers\"");
}

TEST(ModelSpecParse, RejectsReluWithExtraKey) {
  json doc = valid_doc();
  doc["layers"][2]["units"] = 4;
  expect_error_all([&] { parse(doc); }, {"layers[2].units", "unknown key \"units\""});
}

TEST(ModelSpecParse, RejectsMissingName) {
  json doc = valid_doc();
  doc.erase("name");
  expect_error([&] { parse(doc); }, "missing required field \"name\"");
}

TEST(ModelSpecParse, RejectsNonObjectDocumentAndLayer) {
  expect_error([] { parse(json::array()); }, "expected an object");
  json doc = valid_doc();
  doc["layers"][1] = "dense";
  expect_error([&] { parse(doc); }, "layers[1]: expected a layer object");
}

TEST(ModelSpecParse, RejectsBadTrainingDefaults) {
  json doc = valid_doc();
  doc["training"] = {{"lr", 0}};
  expect_error([&] { parse(doc); }, "training.lr: must be > 0");
  doc["training"] = {{"batch_size", 0}};
  expect_error([&] { parse(doc); }, "training.batch_size: must be > 0");
  doc["training"] = {{"epochs", 3}};
  expect_error([&] { parse(doc); }, "training.epochs");
}

TEST(ModelSpecJson, RoundTripEquals) {
  json doc = valid_doc();
  doc["description"] = "round trip";
  doc["init_std"] = 0.02;
  doc["l2"] = 1e-4;
  doc["layers"].push_back({{"type", "dense"}, {"units", 7}, {"bias", true}, {"init_std", 0.3}});
  doc["output"] = {{"bias", true}, {"l2", 0.5}};
  doc["training"] = {{"batch_size", 64}, {"lr", 0.25}};
  const bp::ModelSpec a = bp::parse_model(doc, "a.json");
  const json written = bp::model_to_json(a);
  // Through text as well, as config.json is.
  const bp::ModelSpec b = bp::parse_model(json::parse(written.dump()), "b.json");

  EXPECT_EQ(bp::model_to_json(b), written);
  EXPECT_EQ(b.name, a.name);
  EXPECT_EQ(b.description, a.description);
  ASSERT_EQ(b.layers.size(), a.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    EXPECT_EQ(b.layers[i].type, a.layers[i].type);
    EXPECT_EQ(b.layers[i].units, a.layers[i].units);
    EXPECT_EQ(b.layers[i].bias, a.layers[i].bias);
    EXPECT_EQ(b.layers[i].init_std, a.layers[i].init_std);
    EXPECT_EQ(b.layers[i].l2, a.layers[i].l2);
  }
  EXPECT_EQ(b.output.type, a.output.type);
  EXPECT_EQ(b.output.bias, a.output.bias);
  EXPECT_EQ(b.output.init_std, a.output.init_std);
  EXPECT_EQ(b.output.l2, a.output.l2);
  EXPECT_EQ(b.training.batch_size, a.training.batch_size);
  EXPECT_EQ(b.training.lr, a.training.lr);

  // Spot-check the resolved values came through.
  EXPECT_EQ(a.layers[1].init_std, 0.02);
  EXPECT_EQ(a.layers[1].l2, 1e-4);
  EXPECT_EQ(a.layers[3].units, 7);
  EXPECT_TRUE(a.layers[3].bias);
  EXPECT_EQ(a.layers[3].init_std, 0.3);
  EXPECT_TRUE(a.output.bias);
  EXPECT_EQ(a.output.init_std, 0.02);
  EXPECT_EQ(a.output.l2, 0.5);
}

TEST(ModelSpecJson, ShippedDenseRoundTrips) {
  const bp::ModelSpec a = bp::load_model("dense");
  const json written = bp::model_to_json(a);
  EXPECT_EQ(bp::model_to_json(bp::parse_model(written, "config.json")), written);
}

}  // namespace
