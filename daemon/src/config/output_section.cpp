#include "rootcertd/config/sections.hpp"
#include "rootcertd/config/values.hpp"
#include "rootcertd/sources/providers.hpp"

namespace rootcertd::config_read {

namespace {

// One `select:` mapping of an output.
OutputSelect read_select(MapReader& m, const Config& cfg) {
    OutputSelect sel;
    sel.provider = m.text("provider").value_or("");
    if (!sel.provider.empty() && sel.provider != "url" && !find_preset(sel.provider)) {
        raise(m.site("provider"), "unknown provider '" + sel.provider + "'");
    }
    sel.discover = m.text("discover").value_or("");
    if (!sel.discover.empty() &&
        std::none_of(cfg.discover.begin(), cfg.discover.end(),
                     [&](const Discovery& d) { return d.label() == sel.discover; })) {
        std::string labels;
        for (const auto& d : cfg.discover) labels += (labels.empty() ? "" : ", ") + d.label();
        raise(m.site("discover"), "'" + sel.discover + "' is no discover entry (" +
                                      (labels.empty() ? "none is set" : "they are: " + labels) +
                                      ")");
    }
    sel.name = m.text("name").value_or("");
    if (sel.provider.empty() && sel.discover.empty() && sel.name.empty()) {
        m.raise_typo_of({"provider", "discover", "name"});
        raise(m.site(), "set provider, discover or name (a glob)");
    }
    m.finish();
    return sel;
}

}  // namespace

// One entry of `outputs:`. TAKEN: instance and output names, with their lines.
Output read_output(const std::string& source, MapReader& m, const Config& cfg,
                   const NameLines& taken) {
    Output out;
    out.name = m.required("name");
    check_new_name(m, out.name, taken, "entry");
    if (auto f = m.text("format")) {
        if (*f == "pem") {
            out.format = OutputFormat::pem;
        } else if (*f == "pkcs12") {
            out.format = OutputFormat::pkcs12;
        } else if (*f == "jks") {
            out.format = OutputFormat::jks;
        } else {
            raise(m.site("format"), "'" + *f + "' is not pem, pkcs12 or jks");
        }
    }
    const char* ext = out.format == OutputFormat::pem      ? ".pem"
                      : out.format == OutputFormat::pkcs12 ? ".p12"
                                                           : ".jks";
    out.path = m.path("path", cfg.cert_dir).value_or(cfg.cert_dir / (out.name + ext));
    out.path = out.path.lexically_normal();
    if (out.path.filename().empty()) raise(m.site("path"), "must name a file, not a directory");
    if (out.path.parent_path() == cfg.cert_dir.lexically_normal() &&
        out.path.extension() == ".crt" && taken.contains(out.path.stem().string())) {
        raise(m.site("path"), "'" + out.path.string() + "' is an instance's own file");
    }
    if (auto list = m.take("instances")) {
        if (!list->IsSequence()) raise(m.site(*list, "instances"), "must be a list of names");
        for (std::size_t i = 0; i < list->size(); ++i) {
            const auto item = (*list)[i];
            if (!item.IsScalar()) raise(m.site(item, "instances"), "must be a list of names");
            const std::string name(item.Scalar());
            const bool listed =
                std::any_of(cfg.instances.begin(), cfg.instances.end(),
                            [&](const Instance& inst) { return inst.name == name; });
            // A discovered instance may be named too: it joins when listed.
            if (!listed && cfg.discover.empty()) {
                raise(m.site(item, "instances"), "'" + name + "' is no instance's name");
            }
            out.instances.push_back(name);
        }
    }
    if (auto sel = m.take("select")) {
        if (sel->IsSequence()) {
            for (std::size_t i = 0; i < sel->size(); ++i) {
                MapReader s(source, (*sel)[i], m.site().key + ".select[" + std::to_string(i) + "]");
                out.select.push_back(read_select(s, cfg));
            }
        } else {
            MapReader s(source, *sel, m.site().key + ".select");
            out.select.push_back(read_select(s, cfg));
        }
    }
    if (out.instances.empty() && out.select.empty()) {
        m.raise_typo_of({"instances", "select"});
        raise(m.site(), "set instances (names) or select: the members of the output");
    }
    if (m.has("password")) {
        if (out.format == OutputFormat::pem) {
            raise(m.site("password"), "only for format pkcs12 or jks (PEM has no password)");
        }
        out.password = credential_name(m, "password", cfg);
    }
    out.file = cfg.file;
    read_ownership(m, out.file);
    out.on_change = read_hook(source, m);
    return out;
}

}  // namespace rootcertd::config_read
