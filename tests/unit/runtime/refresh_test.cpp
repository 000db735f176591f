#include "rootcertd/runtime/refresh.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fstream>
#include <future>

#include "pki.hpp"
#include "rootcertd/config/config.hpp"
#include "tempdir.hpp"

using namespace rootcertd;

namespace {

// Plays the API without sockets and records what it was asked.
class FakeClient final : public HttpClient {
  public:
    Outcome<HttpResponse> next = fail("no response staged");
    std::string seen_target, seen_token;
    HttpRequest seen;
    int calls = 0;

    boost::asio::awaitable<Outcome<HttpResponse>> get(HttpRequest request) override {
        ++calls;
        seen_target = request.target;
        seen_token = request.authorization;
        seen = std::move(request);
        co_return next;
    }
    void close() override {}
    std::size_t open_connections() const override { return 0; }
};

class Refresh : public ::testing::Test {
  protected:
    Refresh() {
        ::setenv("ROOTCERTD_TEST_REFRESH_TOKEN", "tok-123.secret", 1);
        auto cfg = parse_config(
            "api: {url: https://api.example, token_env: ROOTCERTD_TEST_REFRESH_TOKEN}\n"
            "cert_dir: " +
                (dir / "certs").string() +
                "\n"
                "state_dir: " +
                (dir / "state").string() +
                "\n"
                "instances: [{org: org_a, id: inst_1, name: prod}]\n",
            "test.yaml");
        instance = cfg.instances[0];
        services = make_services(ioc.get_executor(), cfg, pool,
                                 [fake = fake](auto, const ClientOptions&)
                                     -> Outcome<std::shared_ptr<HttpClient>> { return {fake}; })
                       .value();
        EXPECT_TRUE(services->files.store.prepare().ok());
        EXPECT_TRUE(services->files.state_store.prepare().ok());
    }
    ~Refresh() override { pool.join(); }

    RefreshResult run() {
        RefreshResult out;
        boost::asio::co_spawn(ioc, refresh(services, instance),
                              [&](std::exception_ptr e, RefreshResult r) {
                                  if (e) std::rethrow_exception(e);
                                  out = std::move(r);
                              });
        ioc.restart();
        ioc.run();
        return out;
    }
    void stage(unsigned status, std::string body, std::optional<Duration> retry_after = {}) {
        fake->next = HttpResponse{status, std::move(body), "", retry_after};
    }
    static std::string json_for(const std::string& pem) {
        std::string escaped;
        for (char c : pem) escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
        return "{\"ca.crt\": \"" + escaped + "\"}";
    }
    std::string file() const { return test::read_file(dir / "certs/prod.crt"); }

    test::TempDir dir;
    boost::asio::io_context ioc;
    boost::asio::thread_pool pool{1};
    std::shared_ptr<FakeClient> fake = std::make_shared<FakeClient>();
    std::shared_ptr<Services> services;
    Instance instance;
};

}  // namespace

TEST_F(Refresh, InstallsAValidCaThenSeesItUnchanged) {
    const auto pem = test::make_cert_pem();
    stage(200, json_for(pem));
    auto r = run();
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.change, Change::created);
    EXPECT_EQ(file(), pem);
    EXPECT_EQ(fake->seen_target, "/api/v1/orgs/org_a/instances/inst_1/secrets/certificate");
    EXPECT_EQ(fake->seen_token, "Bearer tok-123.secret");

    auto again = run();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.change, Change::unchanged);

    const auto rotated = test::make_cert_pem({.cn = "Next CA"});
    stage(200, json_for(rotated));
    auto third = run();
    EXPECT_EQ(third.change, Change::replaced);
    EXPECT_EQ(file(), rotated + pem) << "the new CA first, the previous one kept (keep_previous)";
}

// --once: every pass is a new process, so the rotation state lives on disk only.
TEST_F(Refresh, ASinglePassKeepsNoStateInMemoryAndStillKeepsThePreviousCa) {
    services->files.state_files.emplace();  // state_dir listed empty at start-up
    const auto run = [this] {               // as --once: each refresh forgotten when it ends
        auto r = Refresh::run();
        services->forget("prod");
        return r;
    };
    const auto pem = test::make_cert_pem();
    stage(200, json_for(pem));
    ASSERT_TRUE(run().ok());
    EXPECT_TRUE(services->files.states.empty());

    const auto rotated = test::make_cert_pem({.cn = "Next CA"});
    stage(200, json_for(rotated));
    auto r = run();
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(services->files.states.empty());
    EXPECT_EQ(file(), rotated + pem) << "the previous CA kept";

    auto again = run();  // the next pass: what is kept comes from state_dir
    ASSERT_TRUE(again.ok()) << again.error();
    EXPECT_EQ(again.change, Change::unchanged);
    EXPECT_EQ(file(), rotated + pem);

    // The state file written after the listing is read, not skipped: its
    // overlap, ended here, ends the previous CA's stay in the file.
    const auto path = dir / "state/prod.json";
    auto state = parse_state(test::read_file(path));
    ASSERT_TRUE(state.ok()) << state.error();
    ASSERT_EQ(state.value().kept.size(), 1u);
    state.value().kept[0].until = sys_now() - std::chrono::hours(1);
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << serialize_state(state.value());
    }
    auto ended = run();
    ASSERT_TRUE(ended.ok()) << ended.error();
    EXPECT_EQ(file(), rotated) << "an adopted file would have kept the previous CA again";
}

// A file too big to read on the event loop is read on the pool: the same outcome.
TEST_F(Refresh, AnOversizedFileInPlaceIsReplacedByTheCa) {
    const auto pem = test::make_cert_pem();
    const std::string junk(100 * 1024, 'x');
    {
        std::ofstream out(dir / "certs/prod.crt", std::ios::binary);
        out << junk;
    }
    ASSERT_FALSE(services->files.store.read_up_to("prod.crt", CertStore::loop_read_limit));
    stage(200, json_for(pem));
    auto r = run();
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.change, Change::replaced);
    EXPECT_EQ(file(), pem);
}

TEST_F(Refresh, BadAnswersNeverReplaceAGoodFile) {
    const auto good = test::make_cert_pem();
    stage(200, json_for(good));
    ASSERT_TRUE(run().ok());

    const std::string where =
        "GET /api/v1/orgs/org_a/instances/inst_1/secrets/certificate on https://api.example: ";
    struct Case {
        unsigned status;
        std::string body, error;
        Stage stage;
    };
    const std::vector<Case> cases{
        {404, "\"Secret not found\"", where + "HTTP 404: Secret not found", Stage::http},
        {200, "{}", where + "response is {}: it holds no CA", Stage::response},
        {200, "<html>", where + "response is not JSON", Stage::response},
        {200, json_for(test::make_cert_pem({.cn = "leaf", .ca = false})),
         where + "invalid CA: certificate 'CN=leaf' is not a CA", Stage::validate},
        {200, json_for("garbage"), where + "invalid CA: no PEM CERTIFICATE block found",
         Stage::validate},
    };
    for (const auto& c : cases) {
        stage(c.status, c.body);
        auto r = run();
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().rfind(c.error, 0), 0u) << r.error();
        EXPECT_STREQ(stage_name(r.failure->stage), stage_name(c.stage)) << r.error();
        EXPECT_EQ(file(), good);
    }
    fake->next =
        fail(Stage::tls, "TLS handshake with https://api.example: certificate verify failed");
    auto r = run();
    EXPECT_EQ(r.error(),
              where + "TLS handshake with https://api.example: certificate verify failed");
    EXPECT_EQ(r.failure->stage, Stage::tls);
    EXPECT_EQ(r.unreachable_origin, "https://api.example") << "nothing reached the API";
    EXPECT_EQ(file(), good);
    // Only a body whose CA validated is remembered, so a bad one is judged anew each time.
    EXPECT_EQ(services->seen.extracted.size(), 1u);
    EXPECT_TRUE(services->seen.extracted.contains(json_for(good)));
}

TEST_F(Refresh, RedirectsAreNotFollowed) {
    fake->next = HttpResponse{302, "", "https://evil.example/steal", std::nullopt};
    auto r = run();
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error().find("HTTP 302: redirect to 'https://evil.example/steal' not followed"),
              std::string::npos)
        << r.error();
    EXPECT_EQ(fake->calls, 1);
}

TEST_F(Refresh, ARedirectsQueryAndTheTokenNeverReachAnError) {
    fake->next =
        HttpResponse{302, "", "https://sso.example/login?access_token=tok-123.secret&next=%2F#frag",
                     std::nullopt};
    auto r = run();
    EXPECT_EQ(r.error().find("tok-123.secret"), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find("access_token"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("redirect to 'https://sso.example/login?...' not followed"),
              std::string::npos)
        << r.error();
    // A token in the path is redacted all the same.
    fake->next = HttpResponse{302, "", "https://sso.example/t/tok-123.secret/", std::nullopt};
    r = run();
    EXPECT_NE(r.error().find("redirect to 'https://sso.example/t/[redacted]/'"), std::string::npos)
        << r.error();
}

TEST(Redact, ASecretInsideTheMarkStillEnds) {
    // The scan restarted inside "[redacted]" and never ended (a secret "t" or "acted").
    EXPECT_EQ(redact("a token text", "t"), "a [redacted]oken [redacted]ex[redacted]");
    EXPECT_EQ(redact("enacted, acted", "acted"), "en[redacted], [redacted]");
    EXPECT_EQ(redact("[redacted]", "[redacted]"), "[redacted]");
    EXPECT_EQ(redact("xx", "x"), "[redacted][redacted]");
    EXPECT_EQ(redact("no secret here", ""), "no secret here");
}

TEST_F(Refresh, TheTokenNeverReachesAnError) {
    stage(401, "\"invalid token tok-123.secret\"");
    auto r = run();
    EXPECT_EQ(r.error().find("tok-123.secret"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("HTTP 401: invalid token [redacted]"), std::string::npos) << r.error();
}

TEST_F(Refresh, RetryAfterIsPassedToTheScheduler) {
    stage(503, "\"busy\"", std::chrono::seconds(7));
    auto r = run();
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.retry_after, std::chrono::seconds(7));
}

TEST_F(Refresh, AMissingTokenFailsBeforeAnyRequest) {
    ::unsetenv("ROOTCERTD_TEST_REFRESH_TOKEN");
    auto r = run();
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.error().find("ROOTCERTD_TEST_REFRESH_TOKEN is not set"), std::string::npos);
    EXPECT_EQ(r.failure->stage, Stage::token);
    EXPECT_EQ(fake->calls, 0);
}

// Refreshes that receive the same new bytes while they are being validated
// share that validation: each gets its result, and none is left waiting.
TEST_F(Refresh, ConcurrentValidationsOfTheSameBytesShareOneResult) {
    const auto good = test::make_cert_pem({.cn = "Shared CA"});
    const auto bad =
        std::string("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    std::promise<void> release;
    boost::asio::post(pool, [held = release.get_future()]() mutable { held.wait(); });
    std::vector<std::optional<Outcome<CertBundle>>> got(6);
    for (std::size_t i = 0; i < got.size(); ++i) {
        auto one = [](std::shared_ptr<Services> s, std::string pem,
                      std::optional<Outcome<CertBundle>>& out) -> boost::asio::awaitable<void> {
            out = co_await validate_with_cache(s, pem, sys_now());
        };
        boost::asio::co_spawn(ioc, one(services, i % 2 ? bad : good, got[i]),
                              [](std::exception_ptr e) {
                                  if (e) std::rethrow_exception(e);
                              });
    }
    ioc.poll();  // all six started; the pool is held, so nothing has finished
    EXPECT_EQ(services->seen.validating.size(), 2u) << "one validation per distinct bytes";
    release.set_value();
    ioc.restart();
    ioc.run();
    for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_TRUE(got[i]) << i;
        EXPECT_EQ(got[i]->ok(), i % 2 == 0) << i;
        if (got[i]->ok()) {
            EXPECT_EQ(got[i]->value().newest().subject, "CN=Shared CA");
        }
    }
    EXPECT_TRUE(services->seen.validating.empty());
    EXPECT_EQ(services->seen.validated.size(), 1u);  // only good bytes are remembered
}
