#include <cstdlib>

#include "rootcertd/config/sections.hpp"
#include "rootcertd/config/values.hpp"
#include "rootcertd/net/http_server.hpp"

namespace rootcertd::config_read {

// The top-level settings: directories, defaults for every instance, the
// scheduler's, metrics.
void read_globals(const std::string& source, MapReader& top, const std::filesystem::path& base_dir,
                  Config& cfg) {
    if (auto dir = top.path("cert_dir", base_dir)) cfg.cert_dir = *dir;
    if (auto dir = top.path("state_dir", base_dir)) cfg.state_dir = *dir;
    {
        const auto cert = cfg.cert_dir.lexically_normal(), state = cfg.state_dir.lexically_normal();
        const auto rel = state.lexically_relative(cert);
        if (!rel.empty() && *rel.begin() != "..") {
            // At the key that put it there: state_dir when set, else cert_dir.
            raise(top.site(top.has("state_dir") ? "state_dir" : "cert_dir"),
                  "state_dir '" + cfg.state_dir.string() +
                      "' must not be inside cert_dir (clients read every file there)");
        }
    }
    cfg.pg_service_file = top.path("pg_service_file", base_dir);
    if (auto d = top.parsed<Duration>("verify_interval", positive_duration))
        cfg.verify_interval = *d;
    cfg.keep_previous = read_rotation(source, top).value_or(cfg.keep_previous);
    cfg.on_change = read_hook(source, top);
    if (auto metrics = top.take("metrics")) {
        MapReader m(source, *metrics, "metrics");
        cfg.metrics_listen = m.text("listen");
        if (cfg.metrics_listen) {
            if (auto ep = parse_listen(*cfg.metrics_listen); !ep) {
                raise(m.site("listen"), ep.error());
            }
        }
        m.finish();
    }
    if (auto d = top.parsed<Duration>("refresh_interval", positive_duration)) {
        cfg.refresh_interval = *d;
    }
    if (auto j = top.parsed<double>("jitter", [](const std::string& t) -> Outcome<double> {
            char* end = nullptr;
            const double v = std::strtod(t.c_str(), &end);
            if (t.empty() || *end != '\0' || !(v >= 0.0 && v <= 0.5)) {
                return fail("'" + t + "' must be a fraction between 0 and 0.5");
            }
            return v;
        })) {
        cfg.jitter = *j;
    }
    if (auto retry_node = top.take("retry")) {
        MapReader retry(source, *retry_node, "retry");
        if (auto d = retry.parsed<Duration>("min", positive_duration)) cfg.retry_min = *d;
        if (auto d = retry.parsed<Duration>("max", positive_duration)) cfg.retry_max = *d;
        retry.finish();
        if (cfg.retry_max < cfg.retry_min) raise(retry.site(), "max must not be less than min");
    }
    if (auto c = top.parsed<unsigned>("concurrency", whole_number(1, 1024))) cfg.concurrency = *c;
    if (auto d = top.parsed<Duration>("expiry_warning", parse_duration)) cfg.expiry_warning = *d;
    read_ownership(top, cfg.file);
}

}  // namespace rootcertd::config_read
