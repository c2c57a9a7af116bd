// Authentication and roles at the gateway (docs/reliability.md, "Authentication"), on a 3-rank
// CPU cluster over TCP with gateway.auth on: a query key searches (answers equal a
// single-process search) and reads stats but every write and admin action is refused with
// PERMISSION_DENIED; an admin key does everything; an unknown CURVE key and a NULL-security
// client get no connection at all; every refusal is logged and counted; the allow-list is
// reloaded when its file changes (a key added is let in, a key removed is refused).
#include <gtest/gtest.h>

#include <thread>

#include "coordinator/curve_keys.h"
#include "fault/gateway_cluster.h"

namespace argent {
namespace {

using std::chrono::milliseconds;
using testing::GatewayCluster;
using testing::gateway_queries;
using testing::gateway_search;
using testing::kGatewayDim;

struct Keys {
  std::string dir;
  ClientSecurity query, admin, stranger;
  std::string server_pub, allow_list;
};

ClientSecurity client_keys(const std::string& dir, const std::string& name,
                           const std::string& server_pub) {
  write_curve_key_files(dir + "/" + name, generate_curve_key_pair());
  return load_client_security(dir + "/" + name + ".key", server_pub);
}

void write_allow_list(const Keys& k, bool with_query, bool with_stranger) {
  std::ofstream out(k.allow_list + ".tmp");
  out << "# test allow-list\n\n" << k.admin.client.public_key << " admin\n";
  if (with_query) out << k.query.client.public_key << "   query   # the feed\n";
  if (with_stranger) out << k.stranger.client.public_key << " query\n";
  out.close();
  std::filesystem::rename(k.allow_list + ".tmp", k.allow_list);
}

class GatewayAuth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    keys_ = new Keys;
    keys_->dir = testing::make_gateway_temp_dir("argent-gateway-keys");
    write_curve_key_files(keys_->dir + "/server", generate_curve_key_pair());
    keys_->server_pub = keys_->dir + "/server.pub";
    keys_->query = client_keys(keys_->dir, "query", keys_->server_pub);
    keys_->admin = client_keys(keys_->dir, "admin", keys_->server_pub);
    keys_->stranger = client_keys(keys_->dir, "stranger", keys_->server_pub);
    keys_->allow_list = keys_->dir + "/allow-list";
    write_allow_list(*keys_, true, false);
    cluster_ = GatewayCluster::start("argent-gateway-auth",
                                     "gateway:\n  auth: true\n  server_key: " + keys_->dir +
                                         "/server.key\n  allow_list: " + keys_->allow_list +
                                         "\n  allow_list_check_s: 0.2\n  handshake_ms: 1000\n")
                   .release();
    Client client(cluster_->endpoint, keys_->query);
    ASSERT_TRUE(client.wait_until_healthy(milliseconds(90000))) << cluster_->job->log();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(keys_->dir, ec);
    delete keys_;
  }

  static v1::StatsResponse stats() {
    Client client(cluster_->endpoint, keys_->admin);
    v1::Request r;
    r.mutable_stats();
    return client.call(r, milliseconds(20000)).stats();
  }

  // Waits for `needle` in the server log (the refusal lines are written asynchronously).
  static bool log_contains(const std::string& needle) {
    for (int i = 0; i < 50; ++i) {
      if (cluster_->job->log().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  }

  static v1::Request upsert_request(int64_t id) {
    v1::Request r;
    v1::Item* item = r.mutable_upsert()->add_items();
    item->set_id(id);
    for (int j = 0; j < kGatewayDim; ++j) item->add_embedding(float(j % 5) - 2.f);
    return r;
  }

  static GatewayCluster* cluster_;
  static Keys* keys_;
};
GatewayCluster* GatewayAuth::cluster_ = nullptr;
Keys* GatewayAuth::keys_ = nullptr;

TEST_F(GatewayAuth, QueryKeySearchesButCannotWrite) {
  Client client(cluster_->endpoint, keys_->query);
  const LocalEngine local = LocalEngine::open(cluster_->index, cluster_->config);
  const std::vector<float> x = gateway_queries(16, 3);
  SearchOptions opts;
  opts.k = 10;
  opts.nprobe = cluster_->config.search.nprobe;
  const SearchResults expected = local.search(x.data(), 16, kGatewayDim, {"1:3 OR 2:5"}, opts);
  EXPECT_EQ(testing::wrong_answers(client, x, 16, 10, "1:3 OR 2:5", expected), 0);
  v1::Request stats_request;
  stats_request.mutable_stats();
  EXPECT_EQ(client.call(stats_request).stats().status().code(), v1::OK);

  const int64_t denied_before = stats().rejected_permission();
  const v1::Response upsert = client.call(upsert_request(900001));
  ASSERT_TRUE(upsert.has_mutation());
  EXPECT_EQ(upsert.mutation().status().code(), v1::PERMISSION_DENIED);
  EXPECT_NE(upsert.mutation().status().message().find("admin role"), std::string::npos);
  v1::Request del;
  del.mutable_delete_()->add_ids(5);
  EXPECT_EQ(client.call(del).mutation().status().code(), v1::PERMISSION_DENIED);
  v1::Request snapshot;
  snapshot.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
  const v1::Response admin = client.call(snapshot);
  ASSERT_TRUE(admin.has_admin());
  EXPECT_EQ(admin.admin().status().code(), v1::PERMISSION_DENIED);
  EXPECT_EQ(stats().rejected_permission() - denied_before, 3);
  EXPECT_TRUE(log_contains("refused a request needing the admin role from query key " +
                           keys_->query.client.public_key));
}

TEST_F(GatewayAuth, AdminKeyDoesEverything) {
  Client client(cluster_->endpoint, keys_->admin);
  const v1::Response upsert = client.call(upsert_request(900002));
  ASSERT_TRUE(upsert.has_mutation());
  EXPECT_EQ(upsert.mutation().status().code(), v1::OK) << upsert.mutation().status().message();
  // The item just written is searchable by an exact query equal to its embedding.
  v1::SearchRequest search;
  for (int j = 0; j < kGatewayDim; ++j) search.add_embedding(float(j % 5) - 2.f);
  search.set_k(1);
  search.set_exact(true);
  const v1::SearchResponse found = client.search(search);
  ASSERT_EQ(found.status().code(), v1::OK);
  ASSERT_EQ(found.ids_size(), 1);
  EXPECT_EQ(found.ids(0), 900002);
  v1::Request del;
  del.mutable_delete_()->add_ids(900002);
  EXPECT_EQ(client.call(del).mutation().status().code(), v1::OK);
  v1::Request snapshot;
  snapshot.mutable_admin()->set_action(v1::AdminRequest::SNAPSHOT);
  EXPECT_EQ(client.call(snapshot, milliseconds(60000)).admin().status().code(), v1::OK);
}

TEST_F(GatewayAuth, UnknownKeyAndNullClientAreRefusedAndLogged) {
  const int64_t refused_before = stats().rejected_unauthenticated();
  {
    Client stranger(cluster_->endpoint, keys_->stranger);
    EXPECT_FALSE(stranger.wait_until_healthy(milliseconds(1500)));
  }
  EXPECT_TRUE(log_contains("unknown CURVE key " + keys_->stranger.client.public_key));
  // The stranger's reconnects may have spent this second's refusal-log budget
  // (gateway.log_rejections_per_s), and on a loaded machine the gateway may drain their events
  // late, into the next second: a NULL client retries, each time in a fresh second, until its
  // refusal is logged (it is refused every time; only the log line is rate-limited).
  bool logged = false;
  for (int attempt = 0; attempt < 10 && !logged; ++attempt) {
    std::this_thread::sleep_for(milliseconds(1100));
    {
      Client plain(cluster_->endpoint);  // NULL security
      EXPECT_FALSE(plain.wait_until_healthy(milliseconds(1500)));
    }
    logged = log_contains("wrong security mechanism");
  }
  EXPECT_TRUE(logged);
  // A client that knows the server key but presents the wrong server key: no connection.
  {
    ClientSecurity wrong_server = keys_->query;
    wrong_server.server_public_key = keys_->stranger.client.public_key;
    Client confused(cluster_->endpoint, wrong_server);
    EXPECT_FALSE(confused.wait_until_healthy(milliseconds(1500)));
  }
  EXPECT_GE(stats().rejected_unauthenticated() - refused_before, 2);
}

TEST_F(GatewayAuth, AllowListReloadsWhenItsFileChanges) {
  write_allow_list(*keys_, /*with_query=*/false, /*with_stranger=*/true);
  EXPECT_TRUE(log_contains("gateway: reloaded " + keys_->allow_list));
  bool stranger_in = false;
  for (int attempt = 0; attempt < 20 && !stranger_in; ++attempt) {
    Client stranger(cluster_->endpoint, keys_->stranger);
    stranger_in = stranger.wait_until_healthy(milliseconds(500));
  }
  EXPECT_TRUE(stranger_in) << "a key added to the allow-list was not let in";
  {
    Client removed(cluster_->endpoint, keys_->query);
    EXPECT_FALSE(removed.wait_until_healthy(milliseconds(1500)))
        << "a key removed from the allow-list still connects";
  }
  // A malformed list is refused by name and the previous one stays in force.
  {
    std::ofstream(keys_->allow_list + ".tmp") << "not-a-key admin\n";
    std::filesystem::rename(keys_->allow_list + ".tmp", keys_->allow_list);
  }
  EXPECT_TRUE(log_contains("allow-list not reloaded"));
  Client stranger(cluster_->endpoint, keys_->stranger);
  EXPECT_TRUE(stranger.wait_until_healthy(milliseconds(5000)));
  write_allow_list(*keys_, true, false);  // as the other tests expect it
  std::this_thread::sleep_for(milliseconds(1000));
}

}  // namespace
}  // namespace argent
