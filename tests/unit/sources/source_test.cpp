// fetch_ca: the request a source makes and how its answers are read, with a
// client that plays a queue of answers and records every request.
#include "rootcertd/sources/source.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>

#include "pki.hpp"
#include "rootcertd/config/config.hpp"
#include "rootcertd/runtime/refresh.hpp"
#include "tempdir.hpp"

using namespace rootcertd;

namespace {

class QueueClient final : public HttpClient {
  public:
    std::deque<Outcome<HttpResponse>> answers;
    std::vector<HttpRequest> seen;

    boost::asio::awaitable<Outcome<HttpResponse>> get(HttpRequest request) override {
        seen.push_back(std::move(request));
        if (answers.empty()) co_return fail("no answer staged");
        auto next = std::move(answers.front());
        answers.pop_front();
        co_return next;
    }
    void close() override {}
    std::size_t open_connections() const override { return 0; }
};

HttpResponse answer(unsigned status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

std::string escaped(const std::string& pem) {
    std::string out;
    for (char c : pem) out += c == '\n' ? std::string("\\n") : std::string(1, c);
    return out;
}

class FetchCa : public ::testing::Test {
  protected:
    // A Cloud SQL instance whose token comes from a command (run again after a 401).
    void configure(const std::string& source) {
        auto cfg = parse_config("cert_dir: " + (dir / "certs").string() +
                                    "\nstate_dir: " + (dir / "state").string() +
                                    "\ncredentials:\n  gcp: {command: [/bin/echo, ya29.token]}\n"
                                    "instances:\n  - {name: db, source: " +
                                    source + "}\n",
                                "test.yaml");
        instance = cfg.instances.at(0);
        services = make_services(ioc.get_executor(), cfg, pool,
                                 [client = client](auto, const ClientOptions&)
                                     -> Outcome<std::shared_ptr<HttpClient>> { return {client}; })
                       .value();
    }
    Fetched fetch() {
        Fetched out;
        boost::asio::co_spawn(ioc, fetch_ca(services, instance),
                              [&](std::exception_ptr e, Fetched f) {
                                  if (e) std::rethrow_exception(e);
                                  out = std::move(f);
                              });
        ioc.restart();
        ioc.run();
        return out;
    }
    ~FetchCa() override { pool.join(); }

    const std::string cloudsql =
        "{provider: cloudsql, project: p, instance: i, credential: gcp, api_url: "
        "'https://sql.example'}";
    test::TempDir dir;
    boost::asio::io_context ioc;
    boost::asio::thread_pool pool{1};
    std::shared_ptr<QueueClient> client = std::make_shared<QueueClient>();
    std::shared_ptr<Services> services;
    Instance instance;
    std::string ca = test::make_cert_pem({.cn = "Server CA"});
};

}  // namespace

TEST_F(FetchCa, ADefaultModeCloudSqlInstanceCostsOneRequest) {
    configure(cloudsql);
    client->answers.push_back(answer(200, R"({"certs": [{"cert": ")" + escaped(ca) + R"("}]})"));
    const auto f = fetch();
    ASSERT_TRUE(f.pem) << f.pem.error();
    EXPECT_EQ(f.pem.value(), ca);
    ASSERT_EQ(client->seen.size(), 1u);
    EXPECT_EQ(client->seen[0].target, "/v1/projects/p/instances/i/listServerCas");
    EXPECT_EQ(client->seen[0].authorization, "Bearer ya29.token");
}

TEST_F(FetchCa, ACasModeInstanceIsReadFromConnectSettingsWithTheSameToken) {
    configure(cloudsql);
    auto empty = answer(200, R"({"kind": "sql#instancesListServerCas", "certs": []})");
    empty.etag = "\"v1\"";
    client->answers.push_back(empty);
    client->answers.push_back(
        answer(200, R"({"serverCaMode": "GOOGLE_MANAGED_CAS_CA", "serverCaCert": {"cert": ")" +
                        escaped(ca) + R"("}})"));
    const auto f = fetch();
    ASSERT_TRUE(f.pem) << f.pem.error();
    EXPECT_EQ(f.pem.value(), ca);
    ASSERT_EQ(client->seen.size(), 2u);
    EXPECT_EQ(client->seen[1].target, "/v1/projects/p/instances/i/connectSettings");
    EXPECT_EQ(client->seen[1].authorization, "Bearer ya29.token");
    EXPECT_TRUE(client->seen[1].if_none_match.empty()) << "the fallback is never conditional";
    EXPECT_FALSE(f.validators) << "the first answer's validators do not describe the CA";
}

TEST_F(FetchCa, WhenBothPlacesFailTheErrorNamesBothRequests) {
    configure(cloudsql);
    client->answers.push_back(answer(200, R"({"certs": []})"));
    client->answers.push_back(answer(404, R"({"error": {"message": "not found"}})"));
    const auto f = fetch();
    ASSERT_FALSE(f.pem);
    EXPECT_EQ(f.pem.failure().stage, Stage::http);
    EXPECT_NE(f.pem.error().find("GET /v1/projects/p/instances/i/listServerCas on "
                                 "https://sql.example: \"/certs\" is an empty array: it holds "
                                 "no CA; then GET /v1/projects/p/instances/i/connectSettings on "
                                 "https://sql.example: HTTP 404"),
              std::string::npos)
        << f.pem.error();
}

TEST_F(FetchCa, AnHttpErrorOfTheFirstRequestIsNotAReasonToLookElsewhere) {
    configure(cloudsql);
    client->answers.push_back(answer(403, R"({"error": {"message": "denied"}})"));
    const auto f = fetch();
    ASSERT_FALSE(f.pem);
    EXPECT_EQ(client->seen.size(), 1u);
    EXPECT_EQ(f.http_status, 403u);
}

TEST_F(FetchCa, ARefusedTokenFromACommandIsFetchedAgainAndTheRequestRetriedOnce) {
    configure(cloudsql);
    client->answers.push_back(answer(401, R"({"error": {"code": 401}})"));
    client->answers.push_back(answer(200, R"({"certs": [{"cert": ")" + escaped(ca) + R"("}]})"));
    const auto f = fetch();
    ASSERT_TRUE(f.pem) << f.pem.error();
    ASSERT_EQ(client->seen.size(), 2u) << "the refused request, then once more";
    EXPECT_EQ(client->seen[1].authorization, "Bearer ya29.token");
}

TEST_F(FetchCa, OnlyValidatorsThatDescribeTheAnswerAreKept) {
    configure(cloudsql);
    const std::string body = R"({"certs": [{"cert": ")" + escaped(ca) + R"("}]})";
    auto etag_only = answer(200, body);
    etag_only.etag = "\"abc\"";
    auto just_modified = answer(200, body);
    just_modified.etag = "\"def\"";
    just_modified.last_modified = "Sat, 05 Dec 2099 00:00:00 GMT";  // not a minute old
    auto settled = answer(200, body);
    settled.last_modified = "Tue, 01 Dec 2020 10:00:00 GMT";
    for (auto& a : {etag_only, just_modified, settled}) client->answers.push_back(a);
    const auto a = fetch(), b = fetch(), c = fetch();
    ASSERT_TRUE(a.validators);
    EXPECT_EQ(a.validators->etag, "\"abc\"");
    EXPECT_FALSE(b.validators) << "a Last-Modified of less than a minute ago may change again";
    ASSERT_TRUE(c.validators);
    EXPECT_TRUE(c.validators->last_modified);
}

TEST_F(FetchCa, ARedirectIsNotFollowedAndItsQueryNotShown) {
    configure(cloudsql);
    auto moved = answer(302, "");
    moved.location = "https://elsewhere.example/ca?sig=secret-ish";
    client->answers.push_back(moved);
    const auto f = fetch();
    ASSERT_FALSE(f.pem);
    EXPECT_NE(f.pem.error().find("HTTP 302: redirect to 'https://elsewhere.example/ca?...' not "
                                 "followed (the secret only goes to the configured host)"),
              std::string::npos)
        << f.pem.error();
    EXPECT_EQ(f.pem.error().find("sig="), std::string::npos);
    EXPECT_EQ(client->seen.size(), 1u);
}

TEST(RequestHash, TheSameRequestHashesTheSameAndAnyChangeOfItDiffers) {
    Source a;
    a.provider = "url";
    a.api = parse_https_url("https://ca.example").value();
    a.credential = "a-secret-name-longer-than-fifteen";
    a.ca_file = "/etc/rootcertd/a-trust-file-longer-than-fifteen.pem";
    Source same = a;
    EXPECT_EQ(request_hash(a, "/ca.pem"), request_hash(same, "/ca.pem"))
        << "validators kept are used next time";
    EXPECT_NE(request_hash(a, "/ca.pem"), request_hash(a, "/other.pem"));
    for (auto change : std::vector<std::function<void(Source&)>>{
             [](Source& s) { s.credential.reset(); },
             [](Source& s) { s.credential = "another-secret-name-also-long"; },
             [](Source& s) { s.ca_file.reset(); }, [](Source& s) { s.reading.base64 = true; }}) {
        Source changed = a;
        change(changed);
        EXPECT_NE(request_hash(a, "/ca.pem"), request_hash(changed, "/ca.pem"));
    }
}

TEST(SourcePool, EqualSourcesBecomeOneObjectAndOthersStayApart) {
    SourcePool pool;
    Source tembo;
    tembo.provider = "tembo";
    tembo.api = parse_https_url("https://api.data-1.use1.tembo.io").value();
    Shared<Source> first(tembo), second(tembo), other(Source{});
    pool.share(first);
    pool.share(second);
    pool.share(other);
    EXPECT_TRUE(first.same_object(second)) << "one Source for the instances of one origin";
    EXPECT_FALSE(first.same_object(other));
    EXPECT_EQ(*other, Source{});
}
