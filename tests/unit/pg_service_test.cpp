#include "rootcertd/pg_service.hpp"

#include <gtest/gtest.h>

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
    const auto first = merge_service_block(mine, block);
    EXPECT_EQ(first, mine + "\n" + block);

    const std::string after = "[later]\nhost=elsewhere\n";
    const auto with_tail = first + after;
    const auto replaced = merge_service_block(with_tail,
                                              "# BEGIN rootcertd managed block: edits "
                                              "between these lines are overwritten\n"
                                              "# END rootcertd managed block\n");
    EXPECT_EQ(replaced.find("[prod]"), std::string::npos) << "the old block is replaced";
    EXPECT_EQ(replaced.rfind(mine, 0), 0u);
    EXPECT_NE(replaced.find(after), std::string::npos);
    EXPECT_EQ(merge_service_block("", block), block);
}
