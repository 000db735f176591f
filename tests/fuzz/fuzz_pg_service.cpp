// libFuzzer: any pg_service.conf text is either refused untouched or merged
// so that everything outside rootcertd's block survives byte for byte and a
// second merge changes nothing.
#include <cstdint>
#include <string>
#include <string_view>

#include "rootcertd/pg_service.hpp"

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
    return 0;
}
