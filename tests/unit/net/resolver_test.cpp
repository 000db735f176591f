#include "rootcertd/net/resolver.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

using namespace rootcertd;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

Outcome<std::vector<asio::ip::tcp::endpoint>> lookup(Resolver& r, asio::io_context& ioc,
                                                     const std::string& host) {
    Outcome<std::vector<asio::ip::tcp::endpoint>> out = fail("not run");
    const auto run = [&]() -> asio::awaitable<void> { out = co_await r.resolve(host, 5432, 2s); };
    asio::co_spawn(ioc, run(), asio::detached);
    ioc.restart();
    ioc.run();
    return out;
}

}  // namespace

TEST(Resolver, AnAddressIsNotLookedUp) {
    asio::io_context ioc;
    auto resolver = make_resolver(ioc.get_executor()).value();
    for (const char* literal : {"127.0.0.1", "::1"}) {
        auto r = lookup(*resolver, ioc, literal);
        ASSERT_TRUE(r.ok()) << r.error();
        ASSERT_EQ(r->size(), 1u);
        EXPECT_EQ(r->front().address().to_string(), literal);
        EXPECT_EQ(r->front().port(), 5432);
    }
}

TEST(Resolver, ReadsTheHostsFile) {
    asio::io_context ioc;
    auto resolver = make_resolver(ioc.get_executor()).value();
    auto r = lookup(*resolver, ioc, "localhost");
    ASSERT_TRUE(r.ok()) << r.error();
    bool loopback = false;
    for (const auto& e : r.value()) loopback = loopback || e.address().is_loopback();
    EXPECT_TRUE(loopback);
}

TEST(Resolver, AfterCloseEveryLookupFails) {
    asio::io_context ioc;
    auto resolver = make_resolver(ioc.get_executor()).value();
    resolver->close();
    auto r = lookup(*resolver, ioc, "localhost");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "shutting down");
}
