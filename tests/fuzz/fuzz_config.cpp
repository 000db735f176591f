// libFuzzer: the YAML config loader must reject bad input with a ConfigError,
// never crash; and the arena it reads (YamlTree, from yaml-cpp's events, or
// from Boost.JSON's for plain JSON) must match what YAML::Load builds from
// the same bytes, node for node.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "rootcertd/config/config.hpp"
#include "rootcertd/config/yaml_tree.hpp"

namespace {

void expect(bool ok) {
    if (!ok) std::abort();
}

// Aliases can make cycles in both graphs: compare to a bounded depth.
void same(const YAML::Node& want, rootcertd::YamlNode got, bool marks, int depth) {
    if (depth > 32) return;
    expect(!marks ||
           (want.Mark().line == got.Mark().line && want.Mark().column == got.Mark().column));
    switch (want.Type()) {
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined:
            expect(got.IsNull());
            return;
        case YAML::NodeType::Scalar:
            expect(got.IsScalar() && got.Scalar() == want.Scalar());
            return;
        case YAML::NodeType::Sequence:
            expect(got.IsSequence() && got.size() == want.size());
            for (std::size_t i = 0; i < want.size(); ++i) same(want[i], got[i], marks, depth + 1);
            return;
        case YAML::NodeType::Map: {
            expect(got.IsMap() && got.size() == want.size());
            std::size_t i = 0;
            for (const auto& kv : want) {
                same(kv.first, got.key(i), marks, depth + 1);
                same(kv.second, got.value(i), marks, depth + 1);
                ++i;
            }
            return;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        rootcertd::parse_config(text, "fuzz.yaml");
    } catch (const rootcertd::ConfigError&) {
    }

    std::optional<YAML::Node> want;
    try {
        want = YAML::Load(text);
    } catch (const YAML::Exception&) {
    }
    for (const auto marks :
         {rootcertd::YamlTree::Marks::required, rootcertd::YamlTree::Marks::optional}) {
        std::optional<rootcertd::YamlTree> got;
        try {
            got.emplace(text, marks);
        } catch (const YAML::Exception&) {
        }
        // yaml-cpp refuses a few valid JSON texts, which are read as JSON.
        expect(want.has_value() == got.has_value() || (got && !got->has_marks()));
        if (want && got) {
            if (const auto root = got->root()) {
                same(*want, *root, got->has_marks(), 0);
            } else {
                expect(want->IsNull());  // no document at all
            }
        }
    }
    return 0;
}
