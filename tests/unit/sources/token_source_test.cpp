#include "rootcertd/sources/token_source.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "tempdir.hpp"

using namespace rootcertd;

TEST(TokenSource, ReadsAndTrimsAFile) {
    test::TempDir dir;
    const auto path = dir.write("token", "  eyJhbGciOi.payload.sig\n\n");
    auto source = TokenSource::from_file(path);
    EXPECT_EQ(source.get().value(), "eyJhbGciOi.payload.sig");
}

TEST(TokenSource, PicksUpARotatedTokenWithinARecheckInterval) {
    test::TempDir dir;
    const auto path = dir.write("token", "first-token");
    auto source = TokenSource::from_file(path);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(source.get(t0).value(), "first-token");
    // Rotation by rename, as tools like systemd credentials and kubelet do.
    dir.write("token.new", "second-token");
    std::filesystem::rename(dir / "token.new", path);
    const auto soon = t0 + TokenSource::recheck_interval / 2;
    EXPECT_EQ(source.get(soon).value(), "first-token") << "one stat per interval, not per call";
    EXPECT_EQ(source.get(t0 + TokenSource::recheck_interval).value(), "second-token");

    dir.write("token.new", "third-token");
    std::filesystem::rename(dir / "token.new", path);
    source.recheck();  // the API refused the token
    EXPECT_EQ(source.get(t0 + TokenSource::recheck_interval).value(), "third-token");
}

TEST(TokenSource, ErrorsNameTheSourceButNeverTheToken) {
    test::TempDir dir;
    auto missing = TokenSource::from_file(dir / "absent").get();
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().find("absent: No such file or directory"), std::string::npos);

    const auto path = dir.write("token", "secret-part-one\nsecret-part-two\n");
    auto two = TokenSource::from_file(path).get();
    ASSERT_FALSE(two.ok());
    EXPECT_EQ(two.error().find("secret"), std::string::npos) << two.error();

    EXPECT_FALSE(TokenSource::from_file(dir.write("empty", "\n")).get().ok());
}

TEST(TokenSource, ReadsTheEnvironment) {
    ::setenv("ROOTCERTD_TEST_TOKEN", "abc.def.ghi\n", 1);
    EXPECT_EQ(TokenSource::from_env("ROOTCERTD_TEST_TOKEN").get().value(), "abc.def.ghi");
    ::unsetenv("ROOTCERTD_TEST_TOKEN");
    EXPECT_EQ(TokenSource::from_env("ROOTCERTD_TEST_TOKEN").get().error(),
              "environment variable ROOTCERTD_TEST_TOKEN is not set");
}

TEST(TokenSource, SaysWhenTheFileIsNotPrivate) {
    test::TempDir dir;
    const auto path = dir.write("token", "tok");
    std::filesystem::permissions(path, std::filesystem::perms(0644));
    auto source = TokenSource::from_file(path);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(source.get(t0).ok());
    EXPECT_NE(source.exposure().find("open to others or group-writable (mode 0644): chmod 0600 it"),
              std::string::npos)
        << source.exposure();
    // A projected Kubernetes Secret: group-readable for the pod's fsGroup.
    std::filesystem::permissions(path, std::filesystem::perms(0440));
    ASSERT_TRUE(source.get(t0 + TokenSource::recheck_interval).ok());
    EXPECT_EQ(source.exposure(), "") << "0440 is a deliberate grant to a group";
    std::filesystem::permissions(path, std::filesystem::perms(0604));
    ASSERT_TRUE(source.get(t0 + 2 * TokenSource::recheck_interval).ok());
    EXPECT_NE(source.exposure().find("(mode 0604)"), std::string::npos);
    std::filesystem::permissions(path, std::filesystem::perms(0600));  // a chmod alone
    ASSERT_TRUE(source.get(t0 + 3 * TokenSource::recheck_interval).ok());
    EXPECT_EQ(source.exposure(), "");
}
