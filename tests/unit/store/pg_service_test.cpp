#include "rootcertd/store/pg_service.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "rootcertd/config/config.hpp"
#include "tempdir.hpp"

using namespace rootcertd;

namespace {
Config two_instances() {
    return parse_config(R"(api: {url: https://h, token_env: T}
cert_dir: /var/lib/rootcertd/certs
instances:
  - {org: a, id: one, name: prod, host: prod.data-1.use1.tembo.io, dbname: app, user: svc}
  - {org: a, id: two, name: nohost}
  - {org: a, id: three, name: eu, host: 10.0.0.5, port: 6432}
)",
                        "/etc/rootcertd/rootcertd.yaml");
}
}  // namespace

TEST(PgService, OneSectionPerInstanceWithAHost) {
    const auto block = render_service_block(two_instances());
    EXPECT_NE(block.find("[prod]\nhost=prod.data-1.use1.tembo.io\nport=5432\nsslmode=verify-full\n"
                         "sslrootcert=/var/lib/rootcertd/certs/prod.crt\ndbname=app\nuser=svc\n"),
              std::string::npos)
        << block;
    EXPECT_NE(block.find("[eu]\nhost=10.0.0.5\nport=6432\n"), std::string::npos) << block;
    EXPECT_EQ(block.find("[nohost]"), std::string::npos);
    EXPECT_EQ(block.find("# BEGIN rootcertd managed block"), 0u);
}

TEST(PgService, HandWrittenSectionsArePreserved) {
    const std::string mine = "# my services\n[local]\nhost=/run/postgresql\n";
    const auto block = render_service_block(two_instances());
    const auto first = merge_service_block(mine, block).value();
    EXPECT_EQ(first, mine + "\n" + block);

    const std::string after = "[later]\nhost=elsewhere\n";
    const auto with_tail = first + after;
    const auto replaced = merge_service_block(with_tail,
                                              "# BEGIN rootcertd managed block: edits "
                                              "between these lines are overwritten\n"
                                              "# END rootcertd managed block\n")
                              .value();
    EXPECT_EQ(replaced.find("[prod]"), std::string::npos) << "the old block is replaced";
    EXPECT_EQ(replaced.rfind(mine, 0), 0u);
    EXPECT_NE(replaced.find(after), std::string::npos);
    EXPECT_EQ(merge_service_block("", block).value(), block);
}

namespace {
const std::string begin_line =
    "# BEGIN rootcertd managed block: edits between these lines are overwritten\n";
const std::string end_line = "# END rootcertd managed block\n";
}  // namespace

TEST(PgService, MalformedMarkersLeaveTheFileUntouched) {
    const auto block = render_service_block(two_instances());
    const std::string below = "[mine]\nhost=db\npassword=secret\n";
    // An orphan BEGIN: replacing from it to the new END would delete [mine].
    for (const std::string& text :
         {"[a]\n" + begin_line + "[old]\n" + below, "[a]\n" + end_line + below,
          begin_line + end_line + begin_line + end_line + below,
          "[a]\n" + end_line + begin_line + below}) {
        const auto merged = merge_service_block(text, block);
        ASSERT_FALSE(merged.ok()) << text;
        EXPECT_NE(merged.error().find("not one BEGIN followed by one END"), std::string::npos);
    }
    // A marker that is not a whole line is text, not a marker.
    const std::string quoted = "# see '" + begin_line.substr(2, 20) + "'\n";
    EXPECT_TRUE(merge_service_block(quoted, block).ok());
}

namespace {
using rootcertd::test::read_file;
using rootcertd::test::TempDir;

Config with_service_file(const std::filesystem::path& file) {
    auto cfg = two_instances();
    cfg.pg_service_file = file;
    return cfg;
}
mode_t mode_of(const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
}
}  // namespace

TEST(PgService, TheFileKeepsItsModeAndOwner) {
    TempDir dir;
    const auto file = dir.write("pg_service.conf", "[mine]\nhost=db\npassword=secret\n");
    std::filesystem::permissions(file, std::filesystem::perms(0600));
    auto r = update_service_file(file, with_service_file(file));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(r.value());
    EXPECT_EQ(mode_of(file), 0600u);
    EXPECT_NE(read_file(file).find("password=secret"), std::string::npos);
    // A new file is readable by every client.
    const auto fresh = dir / "new.conf";
    ASSERT_TRUE(update_service_file(fresh, with_service_file(fresh)).ok());
    EXPECT_EQ(mode_of(fresh), 0644u);
}

TEST(PgService, ASymlinkIsFollowedAndKept) {
    TempDir dir;
    const auto real = dir.write("real.conf", "[mine]\nhost=db\n");
    const auto link = dir / "pg_service.conf";
    std::filesystem::create_symlink("real.conf", link);
    auto r = update_service_file(link, with_service_file(link));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(std::filesystem::is_symlink(link));
    const auto text = read_file(real);
    EXPECT_EQ(text.rfind("[mine]\nhost=db\n", 0), 0u) << text;
    EXPECT_NE(text.find("[prod]"), std::string::npos) << text;
    // A link to nothing is an error, not a new plain file in its place.
    std::filesystem::create_symlink("missing/x.conf", dir / "dangling.conf");
    auto dangling = update_service_file(dir / "dangling.conf", with_service_file(link));
    ASSERT_FALSE(dangling.ok());
    EXPECT_NE(dangling.error().find("symlink"), std::string::npos) << dangling.error();
    EXPECT_TRUE(std::filesystem::is_symlink(dir / "dangling.conf"));
}

TEST(PgService, AnOrphanMarkerKeepsTheFileByteForByte) {
    TempDir dir;
    const std::string text = "[a]\nhost=x\n" + begin_line + "[old]\n\n[mine]\nhost=db\n";
    const auto file = dir.write("pg_service.conf", text);
    auto r = update_service_file(file, with_service_file(file));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find(file.string()), std::string::npos) << r.error();
    EXPECT_EQ(read_file(file), text);
}

TEST(PgService, SectionsOfInstancesNotInTheConfigCanBeKeptAsTheyAre) {
    // A discovery source that has not listed since start: its sections stay
    // (another source's list dropped them).
    const std::string theirs = "[sql-a]\nhost=sql-a.proj.sql.goog\nport=5432\n\n";
    const std::string existing = "[mine]\nhost=x\n\n" + begin_line + theirs +
                                 "[prod]\nhost=old.example\nport=5432\n\n" + end_line;
    const auto cfg = two_instances();
    EXPECT_EQ(sections_not_in(existing, cfg), theirs) << "prod is the config's own";
    const auto block = render_service_block(cfg, sections_not_in(existing, cfg));
    EXPECT_NE(block.find("[prod]\nhost=prod.data-1.use1.tembo.io"), std::string::npos) << block;
    EXPECT_EQ(block.find("old.example"), std::string::npos) << block;
    EXPECT_NE(block.find(theirs + end_line), std::string::npos) << block;
    EXPECT_EQ(sections_not_in("[mine]\nhost=x\n", cfg), "") << "no block, nothing kept";
}
