#include "rootcertd/config/config.hpp"

#include <yaml-cpp/exceptions.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "rootcertd/config/sections.hpp"
#include "rootcertd/config/values.hpp"
#include "rootcertd/config/yaml_tree.hpp"

namespace rootcertd {

namespace {

using namespace config_read;

YamlTree read_tree(const std::string& yaml, const std::string& source, YamlTree::Marks marks) {
    // yaml-cpp calls a tab in the indentation an "illegal map value".
    std::size_t line = 0;
    for (std::size_t at = 0; at < yaml.size(); ++line) {
        const auto end = std::min(yaml.find('\n', at), yaml.size());
        const auto text = std::min(yaml.find_first_not_of(" \t", at), end);
        if (const auto tab = yaml.find('\t', at); tab < text && text < end) {
            YAML::Mark mark;
            mark.pos = static_cast<int>(tab);
            mark.line = static_cast<int>(line);
            mark.column = static_cast<int>(tab - at);
            raise({source, mark, ""},
                  "tabs are not allowed in YAML indentation; indent with spaces");
        }
        at = end + 1;
    }
    try {
        return YamlTree(yaml, marks);
    } catch (const YAML::ParserException& e) {
        raise({source, e.mark, ""}, "YAML syntax error: " + e.msg);
    }
}

Config read_config(const YamlTree& tree, const std::string& source) {
    const auto root = tree.root();
    if (!root || root->IsNull()) raise({source, YAML::Mark::null_mark(), ""}, "the file is empty");

    // Absolute: "rootcertd.yaml" given as a bare name has no parent to join
    // relative paths to, and the daemon must not depend on its cwd later.
    std::error_code cwd_error;
    const auto base_dir = std::filesystem::absolute(source, cwd_error).parent_path();
    Config cfg;
    cfg.source = source;
    MapReader top(source, *root, "");

    read_api(source, top, base_dir, cfg);
    read_credentials(source, top, base_dir, cfg);

    read_globals(source, top, base_dir, cfg);

    if (auto entries = top.take("discover")) {
        if (!entries->IsSequence()) raise(top.site(*entries, "discover"), "must be a list");
        for (std::size_t i = 0; i < entries->size(); ++i) {
            MapReader m(source, (*entries)[i], "discover[" + std::to_string(i) + "]");
            cfg.discover.push_back(
                typo_first(m, [&] { return read_discovery(source, m, cfg, base_dir); }));
            m.finish();
        }
    }
    auto list = top.take("instances");
    if (list && !list->IsSequence()) {
        raise(top.site(*list, "instances"), "'instances' must be a list");
    }
    if ((!list || list->size() == 0) && cfg.discover.empty()) {
        raise(list ? top.site(*list, "instances") : top.site(),
              "'instances' must list at least one instance (or set discover)");
    }
    auto outputs = top.take("outputs");
    if (outputs && !outputs->IsSequence()) raise(top.site(*outputs, "outputs"), "must be a list");
    top.finish();

    // Names point into cfg.instances, which never reallocates: reserved here.
    cfg.instances.reserve(list ? list->size() : 0);
    NameLines seen_names;
    InstancesRead read;
    seen_names.reserve(list ? list->size() : 0);
    for (std::size_t i = 0; list && i < list->size(); ++i) {
        const auto node = (*list)[i];
        MapReader m(source, node, "instances[" + std::to_string(i) + "]");
        auto inst = typo_first(
            m, [&] { return read_instance(source, m, cfg, base_dir, seen_names, read); });
        const int line = node.Mark().line + 1;
        m.finish();
        read.sources.share(inst.source);
        const auto& added = cfg.instances.emplace_back(std::move(inst));
        seen_names.emplace(added.name, line);
    }
    cfg.outputs.reserve(outputs ? outputs->size() : 0);  // names point into it too
    for (std::size_t i = 0; outputs && i < outputs->size(); ++i) {
        const auto node = (*outputs)[i];
        MapReader m(source, node, "outputs[" + std::to_string(i) + "]");
        const auto& added = cfg.outputs.emplace_back(
            typo_first(m, [&] { return read_output(source, m, cfg, seen_names); }));
        m.finish();
        seen_names.emplace(added.name, node.Mark().line + 1);
    }
    return cfg;
}

}  // namespace

Config parse_config(const std::string& yaml, const std::string& source) {
    const auto tree = read_tree(yaml, source, YamlTree::Marks::optional);
    try {
        return read_config(tree, source);
    } catch (const ConfigError& e) {
        if (tree.has_marks()) throw;
        // Read as JSON, without marks: read the text again with them, so
        // that the same mistake is reported with its line and column.
        std::optional<YamlTree> marked;
        try {
            marked.emplace(yaml, YamlTree::Marks::required);
        } catch (const YAML::ParserException&) {
            throw e;  // JSON that yaml-cpp refuses: the mistake, without its place
        }
        return read_config(*marked, source);
    }
}

Config load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno), path);
    // Whoever can change the file chooses the commands the daemon runs.
    if (auto safe = safe_path(path); !safe) {
        throw ConfigError(
            path + ": refusing a configuration that others can change: " + safe.error(), path);
    }
    // Read into one string, sized first when the file's size is known: a
    // stringstream and its copy were both alive while a fleet's config was
    // parsed (the peak of --once).
    std::string text;
    std::error_code ec;
    if (const auto size = std::filesystem::file_size(path, ec); !ec) text.reserve(size);
    std::array<char, 1 << 16> chunk;
    while (in.read(chunk.data(), chunk.size()), in.gcount() > 0) {
        text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) throw ConfigError(path + ": cannot read: " + std::strerror(errno), path);
    return parse_config(text, path);
}

}  // namespace rootcertd
