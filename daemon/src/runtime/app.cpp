#include "rootcertd/runtime/app.hpp"

#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>
#include <vector>

#include "rootcertd/config/config.hpp"
#include "rootcertd/core/logging.hpp"
#include "rootcertd/net/proxy.hpp"
#include "rootcertd/runtime/fleet.hpp"
#include "rootcertd/runtime/refresh.hpp"
#include "rootcertd/runtime/reporter.hpp"
#include "rootcertd/runtime/runtime.hpp"
#include "rootcertd/sources/token_source.hpp"
#include "rootcertd/store/outputs.hpp"

namespace rootcertd {

int run(const RunOptions& options) {
    Runtime runtime(options);
    auto cfg = runtime.load(false);
    if (!cfg) return exit_usage;
    auto services = runtime.make_services(std::move(*cfg));
    if (!services) return exit_failed;
    return options.once ? run_one_pass(runtime, std::move(services))
                        : run_daemon(runtime, std::move(services));
}

namespace {

// Where INSTANCE's CA comes from, as an operator checks it: the whole URL
// (for Tembo the data plane it derived), or the trust store.
std::string ca_url(const Instance& instance) {
    const auto& src = *instance.source;
    if (src.roots != nullptr) return "system trust store (" + std::string(src.provider) + ")";
    return src.api.origin() + instance.target;
}

// Why USER (uid, gid, groups) could not read PATH, by its mode, owner and
// the search bits of every directory above it; nullopt when it could.
std::optional<std::string> unreadable_by(const std::filesystem::path& path, uid_t uid,
                                         const std::vector<gid_t>& groups) {
    const auto allows = [&](const struct stat& st, mode_t owner, mode_t group, mode_t other) {
        if (st.st_uid == uid) return (st.st_mode & owner) != 0;
        if (std::find(groups.begin(), groups.end(), st.st_gid) != groups.end()) {
            return (st.st_mode & group) != 0;
        }
        return (st.st_mode & other) != 0;
    };
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;  // reported where it is read
    for (auto dir = path.parent_path(); !dir.empty(); dir = dir.parent_path()) {
        struct stat d {};
        if (::stat(dir.c_str(), &d) == 0 && !allows(d, S_IXUSR, S_IXGRP, S_IXOTH)) {
            return "cannot enter " + dir.string();
        }
        if (dir == dir.root_path()) break;
    }
    if (allows(st, S_IRUSR, S_IRGRP, S_IROTH)) return std::nullopt;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string("mode ") + mode + ", owner uid " + std::to_string(st.st_uid) +
           ", group gid " + std::to_string(st.st_gid);
}

// Run as root, --check-config tells which files the packaged unit's user
// could not read: the secrets, the trust files.
void check_service_user_can_read(const Config& cfg,
                                 const std::function<void(const std::string&)>& warn) {
    const passwd* pw = ::getpwnam("rootcertd");
    if (::geteuid() != 0 || pw == nullptr) return;
    int n = 0;
    ::getgrouplist(pw->pw_name, pw->pw_gid, nullptr, &n);  // says how many there are
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(n, 1)));
    ::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n);
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    std::vector<std::pair<std::string, std::filesystem::path>> files;
    if (cfg.token_file && !api_token_users(cfg).empty())
        files.emplace_back("api.token_file", *cfg.token_file);
    if (cfg.ca_file) files.emplace_back("api.ca_file", *cfg.ca_file);
    if (cfg.proxy_auth_file) files.emplace_back("api.proxy_auth_file", *cfg.proxy_auth_file);
    for (const auto& c : cfg.credentials) {
        if (c.file) files.emplace_back("credentials." + c.name, *c.file);
    }
    for (const auto& inst : cfg.instances) {
        if (inst.source->ca_file)
            files.emplace_back(inst.name + ".source.ca_file", *inst.source->ca_file);
    }
    for (const auto& [key, file] : files) {
        if (auto why = unreadable_by(file, pw->pw_uid, groups)) {
            warn(key + ": the service user rootcertd cannot read " + file.string() + " (" + *why +
                 "): under systemd pass it with LoadCredential= (rootcertd(8)), or give it "
                 "group rootcertd and mode 0640");
        }
    }
}

// host:port, or "-" without a host (one word: the table's columns split on spaces).
std::string server_of(const Instance& instance) {
    return instance.server ? instance.server->host + ":" + std::to_string(instance.port) : "-";
}

// "a,b,c" (up to 20, then "and N more"), or "none": an output's members.
std::string member_list(const Output& output, const std::vector<Instance>& instances) {
    const auto members = members_of(output, instances);
    std::string out;
    for (std::size_t i = 0; i < members.size() && i < 20; ++i) out += (i ? "," : "") + members[i];
    if (members.size() > 20) out += " and " + std::to_string(members.size() - 20) + " more";
    return out.empty() ? "none" : out;
}

}  // namespace

int list_instances(const RunOptions& options) {
    Runtime runtime(options);
    auto cfg = runtime.load(false);
    if (!cfg) return exit_usage;
    // Services without prepare(): no directory is created, nothing written.
    auto made = make_services(runtime.loop().get_executor(), *cfg, runtime.pool());
    if (!made) {
        spdlog::error("{}", made.error());
        return exit_failed;
    }
    const auto s = std::move(made.value());
    const auto found = discover_once(runtime, s);
    s->close_clients();
    runtime.loop().run();  // the connections close
    if (!found) return exit_failed;
    std::printf("%-32s %-24s %-40s %s\n", "NAME", "FROM", "SERVER", "CA");
    const auto& kept = found->composed;
    for (std::size_t i = 0; i < kept.instances.size(); ++i) {
        const auto& inst = kept.instances[i];
        std::printf("%-32s %-24s %-40s %s\n", inst.name.c_str(), kept.from[i].c_str(),
                    server_of(inst).c_str(), ca_url(inst).c_str());
    }
    for (const auto& r : found->composed.refused) {
        std::printf("%-32s %-24s refused: %s\n", r.name.c_str(), r.source.c_str(),
                    r.reason.c_str());
    }
    for (const auto& [source, failure] : found->failures) {
        const auto& error = failure.message;
        std::printf("%-32s %-24s list failed: %s\n", "-", source.c_str(), error.c_str());
        spdlog::error("{}", error);
    }
    if (!cfg->outputs.empty()) {
        std::printf("\n%-32s %-8s %-40s %s\n", "OUTPUT", "FORMAT", "PATH", "MEMBERS");
        for (const auto& output : cfg->outputs) {
            std::printf("%-32s %-8s %-40s %s\n", output.name.c_str(),
                        std::string(format_name(output.format)).c_str(), output.path.c_str(),
                        member_list(output, kept.instances).c_str());
        }
    }
    // As --once: a failed list or a refused instance is exit 1.
    return found->failures.empty() && found->composed.refused.empty() ? exit_ok : exit_failed;
}

void log_config_error(const ConfigError& e, const std::string& prefix) {
    LogFields fields{{"config", e.file}, {"key", e.key}};
    if (e.line > 0) fields.emplace_back("line", std::to_string(e.line));
    log_event(spdlog::level::err, prefix + e.what(), fields);
}

int check_config(const std::string& path, bool json) {
    // Plain text for a person at a terminal; one JSON line for a log collector.
    const auto say = [&](spdlog::level::level_enum level, const std::string& message) {
        if (json) {
            log_event(level, message, {{"config", path}});
        } else {
            std::fprintf(stderr, "%s%s\n", level == spdlog::level::warn ? "warning: " : "",
                         message.c_str());
        }
    };
    const auto report = [&](const std::string& message) { say(spdlog::level::err, message); };
    const auto warn = [&](const std::string& message) { say(spdlog::level::warn, message); };
    try {
        const auto cfg = load_config(path);
        // Every secret that can be read without running anything; a
        // command credential is only checked to be executable (config.cpp).
        // The API token only when a Tembo instance sends it: a fleet without
        // Tembo runs with the packaged unit's empty token file.
        std::vector<std::pair<std::string, TokenSource>> secrets;
        if (const auto users = api_token_users(cfg); !users.empty()) {
            std::string who = users[0];
            for (std::size_t i = 1; i < users.size() && i < 5; ++i) who += ", " + users[i];
            if (users.size() > 5) who += " and " + std::to_string(users.size() - 5) + " more";
            const std::string where = "api (the Tembo token, sent by " + who + ")";
            if (cfg.token_file)
                secrets.emplace_back(where, TokenSource::from_file(*cfg.token_file));
            if (cfg.token_env) secrets.emplace_back(where, TokenSource::from_env(*cfg.token_env));
        }
        for (const auto& c : cfg.credentials) {
            const std::string where = "credentials." + c.name;
            if (c.file) {
                secrets.emplace_back(where, TokenSource::from_file(*c.file, "credential file"));
            }
            if (c.env) secrets.emplace_back(where, TokenSource::from_env(*c.env));
        }
        for (auto& [where, source] : secrets) {
            if (auto t = source.get(); !t) {
                report(path + ": " + where + ": " + t.error());
                return exit_usage;
            }
            if (!source.exposure().empty()) warn(path + ": " + where + ": " + source.exposure());
        }
        check_service_user_can_read(cfg, [&](const std::string& m) { warn(path + ": " + m); });
        if (auto route = resolve_proxy(cfg.proxy, std::getenv); !route) {
            report(path + ": api: " + route.error());
            return exit_usage;
        }
        std::printf("%s: OK, %zu instance(s), %zu discover entr%s\n", path.c_str(),
                    cfg.instances.size(), cfg.discover.size(),
                    cfg.discover.size() == 1 ? "y" : "ies");
        // What will happen: each instance's source, file and live check.
        for (const auto& inst : cfg.instances) {
            std::printf("  %s: %s, CA from %s, file %s, live check %s\n", inst.name.c_str(),
                        std::string(inst.source->provider).c_str(), ca_url(inst).c_str(),
                        cfg.cert_path(inst).c_str(),
                        inst.server ? server_of(inst).c_str() : "none (no host)");
        }
        for (const auto& d : cfg.discover) {
            std::printf("  discover %s: lists %s%s every %s, files in %s\n", d.label().c_str(),
                        d.list_api.origin().c_str(), first_page(d).c_str(),
                        human(d.interval).c_str(), cfg.cert_dir.c_str());
        }
        for (const auto& output : cfg.outputs) {
            std::printf("  output %s: %s at %s, members %s%s\n", output.name.c_str(),
                        std::string(format_name(output.format)).c_str(), output.path.c_str(),
                        member_list(output, cfg.instances).c_str(),
                        cfg.discover.empty() ? "" : " (discovered ones join as listed)");
        }
        return exit_ok;
    } catch (const ConfigError& e) {
        if (json) {
            log_config_error(e);
        } else {
            std::fprintf(stderr, "%s\n", e.what());
        }
        return exit_usage;
    }
}

}  // namespace rootcertd
