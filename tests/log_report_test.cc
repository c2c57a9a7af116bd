// The line formats operators and scripts read: log lines carry rank and request id (text and
// JSON), and an admin Report prints the same content as an aligned table or as JSON.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "launch/report.h"

namespace argent {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Log, TextLinesCarryRankAndRequest) {
  init_logging("info", 2, "text");
  ::testing::internal::CaptureStderr();
  ARGENT_LOG(kInfo, "outside");
  {
    LogRequestScope scope(17);
    ARGENT_LOG(kWarn, "inside ", 5);
    {
      LogRequestScope inner(18);
      ARGENT_LOG(kInfo, "nested");
    }
    ARGENT_LOG(kInfo, "back");
  }
  ARGENT_LOG(kDebug, "below the level");
  const std::vector<std::string> lines = lines_of(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("[info] [rank 2] [req -] outside"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("[warning] [rank 2] [req 17] inside 5"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("[rank 2] [req 18] nested"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("[rank 2] [req 17] back"), std::string::npos) << lines[3];
}

TEST(Log, JsonLinesParseAndEscape) {
  init_logging("debug", 4, "json");
  ::testing::internal::CaptureStderr();
  ARGENT_LOG(kDebug, "plain");
  {
    LogRequestScope scope(99);
    ARGENT_LOG(kError, "quote \" backslash \\ newline \n tab \t bell \x07");
  }
  const std::vector<std::string> lines = lines_of(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 2u);
  const nlohmann::json a = nlohmann::json::parse(lines[0]), b = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(a["level"], "debug");
  EXPECT_EQ(a["rank"], 4);
  EXPECT_TRUE(a["req"].is_null());
  EXPECT_EQ(a["msg"], "plain");
  EXPECT_EQ(b["level"], "error");
  EXPECT_EQ(b["req"], 99);
  EXPECT_EQ(b["msg"], "quote \" backslash \\ newline \n tab \t bell \x07");
  EXPECT_TRUE(a.contains("ts"));
  init_logging("info", -1, "text");
}

TEST(Log, BadLevelOrFormatIsAnError) {
  EXPECT_THROW(init_logging("loud"), Error);
  EXPECT_THROW(init_logging("info", -1, "xml"), Error);
}

TEST(Report, TextIsAlignedAndJsonKeepsTypes) {
  Report r;
  r.field("health", "ok");
  r.field("ranks", 3);
  r.field("p99_ms", 1.5);
  Table& t = r.table("shards", {"rank", "items", "partitions"});
  t.row({0, 1200, nlohmann::json::array({0, 3, 6})});
  t.row({12, 7, nlohmann::json::array()});
  const std::vector<std::string> text = lines_of(r.text());
  const std::vector<std::string> expected = {
      "health  ok",
      "ranks   3",
      "p99_ms  1.5",
      "",
      "shards:",
      "rank  items  partitions",
      "   0   1200  0,3,6",
      "  12      7  -",
  };
  EXPECT_EQ(text, expected);
  const nlohmann::json j = r.json();
  EXPECT_EQ(j["ranks"], 3);
  EXPECT_EQ(j["p99_ms"], 1.5);
  EXPECT_EQ(j["shards"][0]["items"], 1200);
  EXPECT_EQ(j["shards"][0]["partitions"], nlohmann::json::array({0, 3, 6}));
  EXPECT_EQ(j["shards"][1]["rank"], 12);
  EXPECT_THROW(t.row({1, 2}), Error);  // a row must fill every column
}

TEST(Report, CellText) {
  EXPECT_EQ(cell_text(2.0), "2");
  EXPECT_EQ(cell_text(0.1234), "0.123");
  EXPECT_EQ(cell_text(nlohmann::json()), "-");
  EXPECT_EQ(cell_text("x"), "x");
  EXPECT_EQ(cell_text(-5), "-5");
}

}  // namespace
}  // namespace argent
