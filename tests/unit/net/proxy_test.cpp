#include "rootcertd/net/proxy.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace rootcertd;

namespace {

// resolve_proxy() over a fake environment.
Outcome<ProxyRoute> route(const std::optional<std::string>& configured,
                          std::map<std::string, std::string> env) {
    return resolve_proxy(configured, [&env](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

}  // namespace

TEST(ProxyUrl, ParsesWhatCurlAccepts) {
    auto p = parse_proxy_url("http://proxy.internal:3128");
    ASSERT_TRUE(p) << p.error();
    EXPECT_EQ(p->host, "proxy.internal");
    EXPECT_EQ(p->port, 3128);
    EXPECT_EQ(p->credentials, "");
    EXPECT_EQ(p->origin(), "http://proxy.internal:3128");

    auto bare = parse_proxy_url("10.0.0.1:8080");  // no scheme: http, as curl reads it
    ASSERT_TRUE(bare) << bare.error();
    EXPECT_EQ(bare->host, "10.0.0.1");
    EXPECT_EQ(bare->port, 8080);

    auto defaulted = parse_proxy_url("http://proxy/");
    ASSERT_TRUE(defaulted) << defaulted.error();
    EXPECT_EQ(defaulted->port, 1080);

    auto v6 = parse_proxy_url("http://[::1]:3128");
    ASSERT_TRUE(v6) << v6.error();
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->origin(), "http://[::1]:3128");

    auto creds = parse_proxy_url("http://svc%40corp:p%3Ass@proxy:3128");
    ASSERT_TRUE(creds) << creds.error();
    EXPECT_EQ(creds->credentials, "svc@corp:p:ss");
    EXPECT_EQ(creds->origin(), "http://proxy:3128");
}

TEST(ProxyUrl, RejectsWithoutEchoingCredentials) {
    for (const char* bad :
         {"https://proxy:3128", "socks5://proxy:1080", "http://proxy:3128/path",
          "http://proxy:3128?q", "http://:3128", "http://proxy:0",
          "http://user:hunter2@proxy:3128/x", "http://pr%40xy:3128", ")t%40c0corp%3As728/"}) {
        const auto p = parse_proxy_url(bad);
        EXPECT_FALSE(p) << bad;
        if (!p) {
            EXPECT_EQ(p.error().find("hunter2"), std::string::npos) << p.error();
        }
    }
    EXPECT_NE(parse_proxy_url("https://proxy").error().find("must use http://"), std::string::npos);
}

TEST(NoProxy, MatchesDomainsAddressesAndWildcard) {
    EXPECT_TRUE(no_proxy_matches("*", "api.data-1.use1.tembo.io"));
    EXPECT_TRUE(no_proxy_matches("tembo.io", "api.data-1.use1.tembo.io"));
    EXPECT_TRUE(no_proxy_matches(".tembo.io", "api.data-1.use1.tembo.io"));
    EXPECT_TRUE(no_proxy_matches("*.tembo.io", "api.data-1.use1.tembo.io"));
    EXPECT_TRUE(no_proxy_matches("localhost, 127.0.0.1", "127.0.0.1"));
    EXPECT_TRUE(no_proxy_matches("example.com,TEMBO.IO", "Api.Tembo.Io"));
    EXPECT_TRUE(no_proxy_matches("internal tembo.io:443", "api.tembo.io"));
    EXPECT_TRUE(no_proxy_matches("[::1]:443", "::1"));
    EXPECT_TRUE(no_proxy_matches("::1", "::1"));

    EXPECT_FALSE(no_proxy_matches("", "api.tembo.io"));
    EXPECT_FALSE(no_proxy_matches("bo.io", "api.tembo.io")) << "a suffix only at a dot";
    EXPECT_FALSE(no_proxy_matches("api.tembo.io", "tembo.io"));
    EXPECT_FALSE(no_proxy_matches("127.0.0.1", "127.0.0.10"));
    EXPECT_FALSE(no_proxy_matches(",,.", "api.tembo.io"));
}

TEST(ProxyRoute, ConfigWinsThenLowerThenUpperCase) {
    const Endpoint api{"api.data-1.use1.tembo.io", 443};
    auto from_config = route("http://configured:1", {{"https_proxy", "http://lower:2"}});
    ASSERT_TRUE(from_config);
    EXPECT_EQ(from_config->proxy_for(api)->host, "configured");
    EXPECT_EQ(from_config->source, "api.proxy");

    auto lower = route(std::nullopt, {{"https_proxy", "lower:2"}, {"HTTPS_PROXY", "upper:3"}});
    ASSERT_TRUE(lower);
    EXPECT_EQ(lower->proxy_for(api)->host, "lower");
    EXPECT_EQ(lower->source, "https_proxy");

    auto upper = route(std::nullopt, {{"HTTPS_PROXY", "upper:3"}});
    ASSERT_TRUE(upper);
    EXPECT_EQ(upper->proxy_for(api)->port, 3);

    auto none = route("none", {{"HTTPS_PROXY", "upper:3"}});
    ASSERT_TRUE(none);
    EXPECT_EQ(none->proxy_for(api), nullptr) << "api.proxy: none ignores the environment";

    auto direct = route(std::nullopt, {{"HTTP_PROXY", "plain:4"}});
    ASSERT_TRUE(direct);
    EXPECT_EQ(direct->proxy_for(api), nullptr) << "HTTP_PROXY is for http://, never used";
}

TEST(ProxyRoute, NoProxyExemptsEitherWay) {
    const Endpoint api{"api.data-1.use1.tembo.io", 443};
    const Endpoint other{"api.example.net", 443};
    for (const std::optional<std::string>& configured :
         {std::optional<std::string>("proxy:1"), std::optional<std::string>()}) {
        auto r = route(configured, {{"HTTPS_PROXY", "proxy:1"}, {"NO_PROXY", ".tembo.io"}});
        ASSERT_TRUE(r);
        EXPECT_EQ(r->proxy_for(api), nullptr);
        ASSERT_NE(r->proxy_for(other), nullptr);
    }
    auto lower =
        route(std::nullopt,
              {{"HTTPS_PROXY", "proxy:1"}, {"no_proxy", "example.net"}, {"NO_PROXY", ".tembo.io"}});
    ASSERT_TRUE(lower);
    EXPECT_NE(lower->proxy_for(api), nullptr) << "no_proxy is read before NO_PROXY";
    EXPECT_EQ(lower->proxy_for(other), nullptr);
}

TEST(ProxyRoute, BadEnvironmentNamesTheVariableNotTheSecret) {
    auto r = route(std::nullopt, {{"HTTPS_PROXY", "https://user:s3cret@proxy:1"}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().rfind("HTTPS_PROXY: ", 0), 0u) << r.error();
    EXPECT_EQ(r.error().find("s3cret"), std::string::npos) << r.error();
}

TEST(ProxyAuth, BasicAuthorizationIsRfc7617) {
    // RFC 7617 section 2's own example, and each padding length.
    EXPECT_EQ(basic_authorization("Aladdin:open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    EXPECT_EQ(basic_authorization("a:b"), "Basic YTpi");
    EXPECT_EQ(basic_authorization("ab:c"), "Basic YWI6Yw==");
    EXPECT_EQ(basic_authorization("abc:d"), "Basic YWJjOmQ=");
}
