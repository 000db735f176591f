// rootcertd: keeps managed PostgreSQL root CA files fresh on disk.
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "rootcertd/config/config.hpp"
#include "rootcertd/core/logging.hpp"
#include "rootcertd/runtime/app.hpp"

namespace {

constexpr const char* usage_text =
    "Usage: rootcertd [--config FILE] [--once | --check-config | --list-instances]\n"
    "                 [--log-level LEVEL] [--log-format text|json] [--log-output stderr|stdout]\n"
    "\n"
    "Fetches the root CA of every configured managed PostgreSQL instance (Aiven,\n"
    "DigitalOcean, Cloud SQL, Crunchy Bridge, Ubicloud, RDS, Azure, Tembo, any https URL),\n"
    "validates it and keeps <cert_dir>/<name>.crt whole and current.\n"
    "\n"
    "  --config FILE       configuration (default /etc/rootcertd/rootcertd.yaml)\n"
    "  --once              refresh every instance once and exit:\n"
    "                      0 all fresh, 1 some failed, 2 usage or config error\n"
    "  --check-config      validate the configuration and credentials, exit 0 or 2\n"
    "  --list-instances    run discovery once and print the instances it would keep,\n"
    "                      writing nothing: exit 0, 1 when a list failed, or 2\n"
    "  --log-level LEVEL   trace, debug, info (default), warning, error, off\n"
    "  --log-format FMT    text (default) or json (one object per line)\n"
    "  --log-output OUT    stderr (default) or stdout\n"
    "  -V, --version       print the version and the commit it was built from\n"
    "  -h, --help          print this help\n"
    "\n"
    "Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT stop (exit 0).\n";

// The token lives in this process's memory: no core dump may hold it. Under
// the systemd unit setrlimit() is filtered (LimitCORE=0 does it there);
// PR_SET_DUMPABLE also keeps other processes of the same user from
// attaching to read it.
void forbid_core_dumps() {
    ::prctl(PR_SET_DUMPABLE, 0);
    const rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
}

int usage_error(const std::string& message) {
    std::fprintf(stderr, "rootcertd: %s\n%s", message.c_str(), usage_text);
    return rootcertd::exit_usage;
}

}  // namespace

int main(int argc, char** argv) {
    forbid_core_dumps();
    rootcertd::RunOptions options{rootcertd::default_config_path, false};
    bool check = false;
    auto level = spdlog::level::info;
    std::optional<rootcertd::LogFormat> format;
    bool to_stdout = false;
    bool list = false;

    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::optional<std::string> inline_value;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            inline_value = std::string(arg.substr(eq + 1));
            arg = arg.substr(0, eq);
        }
        const auto value = [&]() -> std::optional<std::string> {
            if (inline_value) return inline_value;
            if (i + 1 < argc) return std::string(argv[++i]);
            return std::nullopt;
        };
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage_text, stdout);
            return rootcertd::exit_ok;
        } else if (arg == "--version" || arg == "-V") {
            std::printf("rootcertd %s (commit %s)\n", ROOTCERTD_VERSION, ROOTCERTD_COMMIT);
            return rootcertd::exit_ok;
        } else if (arg == "--once") {
            options.once = true;
        } else if (arg == "--check-config") {
            check = true;
        } else if (arg == "--list-instances") {
            list = true;
        } else if (arg == "--config" || arg == "-c") {
            auto v = value();
            if (!v || v->empty()) return usage_error("--config needs a file");
            options.config_path = *v;
        } else if (arg == "--log-level") {
            auto v = value();
            auto parsed = v ? rootcertd::parse_log_level(*v) : std::nullopt;
            if (!parsed)
                return usage_error("--log-level takes trace, debug, info, warning, error or off");
            level = *parsed;
        } else if (arg == "--log-output") {
            auto v = value();
            if (!v || (*v != "stderr" && *v != "stdout"))
                return usage_error("--log-output takes stderr or stdout");
            to_stdout = *v == "stdout";
        } else if (arg == "--log-format") {
            auto v = value();
            auto parsed = v ? rootcertd::parse_log_format(*v) : std::nullopt;
            if (!parsed) return usage_error("--log-format takes text or json");
            format = *parsed;
        } else {
            return usage_error("unknown argument '" + std::string(arg) + "'");
        }
    }
    if (int{check} + int{options.once} + int{list} > 1) {
        return usage_error("--once, --check-config and --list-instances exclude each other");
    }
    if (check) {
        // Plain text unless JSON was asked for: a log collector (Kubernetes)
        // then gets one line it can parse, naming the key.
        const bool json = format == rootcertd::LogFormat::json;
        if (json) rootcertd::setup_logging(level, *format, to_stdout);
        return rootcertd::check_config(options.config_path, json);
    }
    // Under systemd with stderr on the journal, text lines carry "<N>" priorities.
    if (!format) {
        format = !to_stdout && rootcertd::stderr_is_journal() ? rootcertd::LogFormat::journal
                                                              : rootcertd::LogFormat::text;
    }
    rootcertd::setup_logging(level, *format, to_stdout);
    if (list) return rootcertd::list_instances(options);
    return rootcertd::run(options);
}
