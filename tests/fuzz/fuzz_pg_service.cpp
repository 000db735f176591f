// libFuzzer: any pg_service.conf text is either refused untouched or merged
// so that everything outside rootcertd's block survives byte for byte and a
// second merge changes nothing, also when the block keeps the sections of
// instances the config does not have.
#include <cstdint>
#include <string>
#include <string_view>

#include "rootcertd/store/pg_service.hpp"

namespace {
constexpr std::string_view block =
    "# BEGIN rootcertd managed block: edits between these lines are overwritten\n"
    "[prod]\nhost=db.example\nport=5432\nsslmode=verify-full\nsslrootcert=/c/prod.crt\n\n"
    "# END rootcertd managed block\n";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto merged = rootcertd::merge_service_block(text, block);
    if (!merged) return 0;
    const std::string& out = merged.value();
    const auto at = out.find(block);
    if (at == std::string::npos) __builtin_trap();
    // What precedes the block is the text's own beginning; what follows it
    // is the text's end.
    if (text.substr(0, at) != std::string_view(out).substr(0, at)) {
        // Appended: the text, a separating line, then the block.
        if (out.compare(0, text.size(), text) != 0) __builtin_trap();
    }
    auto again = rootcertd::merge_service_block(out, block);
    if (!again || again.value() != out) __builtin_trap();

    // Keeping the sections of other instances (a discovery source not yet
    // listed): the kept text is a part of the old block, never the config's
    // own section, and a second write keeps the same.
    static const rootcertd::Config config = [] {
        rootcertd::Config c;
        rootcertd::Instance prod;
        prod.name = "prod";
        prod.server = rootcertd::PgServer{"db.example", std::nullopt, std::nullopt};
        c.instances.push_back(prod);
        c.cert_dir = "/c";
        return c;
    }();
    const auto kept = rootcertd::sections_not_in(text, config);
    if (kept.rfind("[prod]", 0) == 0 || kept.find("\n[prod]") != std::string::npos) {
        __builtin_trap();
    }
    auto first =
        rootcertd::merge_service_block(text, rootcertd::render_service_block(config, kept));
    if (!first) return 0;
    const auto kept_again = rootcertd::sections_not_in(first.value(), config);
    auto second = rootcertd::merge_service_block(
        first.value(), rootcertd::render_service_block(config, kept_again));
    if (!second || second.value() != first.value()) __builtin_trap();
    return 0;
}
