// The pieces of gateway authentication that need no cluster: allow-list parsing (errors name
// the file and line), the role table, CURVE key files (round trip, a .pub file is not a pair, a
// secret key that does not match its public key), the client's key options, and the
// rate-limited refusal log.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "common/error.h"
#include "coordinator/access_control.h"
#include "coordinator/curve_keys.h"
#include "coordinator/rejection_log.h"

namespace argent {
namespace {

std::string temp_dir() {
  const std::filesystem::path p = std::filesystem::temp_directory_path() /
                                  ("argent-keys-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(std::random_device{}()));
  std::filesystem::create_directories(p);
  return p.string();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AllowList, ParsesKeysRolesCommentsAndBlankLines) {
  const CurveKeyPair a = generate_curve_key_pair(), b = generate_curve_key_pair();
  const AllowList list = parse_allow_list(
      "# clients\n\n" + a.public_key + " query\n  " + b.public_key + "\tadmin  # ops\n", "f");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list.at(a.public_key), ClientRole::kQuery);
  EXPECT_EQ(list.at(b.public_key), ClientRole::kAdmin);
  EXPECT_TRUE(parse_allow_list("", "f").empty());
  // Z85 keys contain '#': only a '#' at the start or after a blank begins a comment.
  const std::string hashed = "ab#" + a.public_key.substr(3);
  const AllowList with_hash = parse_allow_list(hashed + " admin #comment\n", "f");
  ASSERT_EQ(with_hash.size(), 1u);
  EXPECT_EQ(with_hash.at(hashed), ClientRole::kAdmin);
}

TEST(AllowList, BadLinesNameFileAndLine) {
  const std::string key = generate_curve_key_pair().public_key;
  EXPECT_NE(error_of([&] { parse_allow_list("\n" + key + "\n", "keys/allow"); })
                .find("keys/allow:2: expected '<public key> <query|admin>'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_allow_list(key + " root\n", "L"); }).find("L:1: unknown role 'root'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_allow_list("short admin\n", "L"); }).find("L:1: 'short' is not a CURVE"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_allow_list(key + " query extra\n", "L"); }).find("unexpected 'extra'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_allow_list(key + " query\n" + key + " admin\n", "L"); })
                .find("L:2: key " + key + " is listed twice"),
            std::string::npos);
  std::string bad_char = key;
  bad_char[5] = '"';  // not in the Z85 alphabet
  EXPECT_NE(error_of([&] { parse_allow_list(bad_char + " query\n", "L"); }).find("not a CURVE"),
            std::string::npos);
}

TEST(Roles, QueryMaySearchReadOnlyAdminMayDoEverything) {
  v1::Request search, stats, health, upsert, del, admin;
  search.mutable_search();
  stats.mutable_stats();
  health.mutable_health();
  upsert.mutable_upsert();
  del.mutable_delete_();
  admin.mutable_admin();
  for (const v1::Request* r : {&search, &stats, &health}) {
    EXPECT_EQ(required_role(*r), ClientRole::kQuery);
    EXPECT_TRUE(role_allows(ClientRole::kQuery, required_role(*r)));
    EXPECT_TRUE(role_allows(ClientRole::kAdmin, required_role(*r)));
    EXPECT_FALSE(role_allows(ClientRole::kNone, required_role(*r)));
  }
  for (const v1::Request* r : {&upsert, &del, &admin}) {
    EXPECT_EQ(required_role(*r), ClientRole::kAdmin);
    EXPECT_FALSE(role_allows(ClientRole::kQuery, required_role(*r)));
    EXPECT_TRUE(role_allows(ClientRole::kAdmin, required_role(*r)));
  }
  EXPECT_EQ(role_of_user_id(user_id_for(ClientRole::kAdmin, "K")), ClientRole::kAdmin);
  EXPECT_EQ(role_of_user_id(user_id_for(ClientRole::kQuery, "K")), ClientRole::kQuery);
  EXPECT_EQ(role_of_user_id(""), ClientRole::kNone);
  EXPECT_EQ(role_of_user_id("administrator:K"), ClientRole::kNone);
}

TEST(CurveKeys, FilesRoundTripAndBadFilesAreNamed) {
  const std::string dir = temp_dir();
  const CurveKeyPair pair = generate_curve_key_pair();
  write_curve_key_files(dir + "/client", pair);
  EXPECT_EQ((std::filesystem::status(dir + "/client.key").permissions() &
             std::filesystem::perms::all),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const CurveKeyPair back = read_curve_key_pair(dir + "/client.key");
  EXPECT_EQ(back.public_key, pair.public_key);
  EXPECT_EQ(back.secret_key, pair.secret_key);
  EXPECT_EQ(read_curve_public_key(dir + "/client.pub"), pair.public_key);
  EXPECT_EQ(read_curve_public_key(dir + "/client.key"), pair.public_key);
  // Missing folders are made.
  write_curve_key_files(dir + "/keys/site", generate_curve_key_pair());
  EXPECT_TRUE(std::filesystem::exists(dir + "/keys/site.pub"));
  // Never overwritten.
  EXPECT_NE(error_of([&] { write_curve_key_files(dir + "/client", generate_curve_key_pair()); })
                .find("never overwritten"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_curve_key_pair(dir + "/client.pub"); }).find("no 'secret-key"),
            std::string::npos);
  const CurveKeyPair other = generate_curve_key_pair();
  std::ofstream(dir + "/mixed.key") << "public-key = " << pair.public_key
                                    << "\nsecret-key = " << other.secret_key << "\n";
  EXPECT_NE(error_of([&] { read_curve_key_pair(dir + "/mixed.key"); }).find("does not belong"),
            std::string::npos);
  std::ofstream(dir + "/bad.pub") << "public-key = tooshort\n";
  EXPECT_NE(error_of([&] { read_curve_public_key(dir + "/bad.pub"); })
                .find("bad.pub:1: public-key is not 40 Z85 characters"),
            std::string::npos);
  EXPECT_FALSE(load_client_security("", "").enabled());
  EXPECT_NE(error_of([&] { load_client_security(dir + "/client.key", ""); }).find("--server-key"),
            std::string::npos);
  EXPECT_TRUE(load_client_security(dir + "/client.key", dir + "/client.pub").enabled());
  std::filesystem::remove_all(dir);
}

TEST(RejectionLog, WritesAtMostTheRateAndCountsTheRest) {
  RejectionLog log(10);
  for (int i = 0; i < 25; ++i) log.refuse("test refusal " + std::to_string(i));
  EXPECT_EQ(log.suppressed_total(), 15);
}

}  // namespace
}  // namespace argent
