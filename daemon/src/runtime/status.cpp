#include "rootcertd/runtime/status.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstdio>

namespace rootcertd {

namespace json = boost::json;

void GlobalStatus::observe_latency(double seconds) {
    for (std::size_t i = 0; i < std::size(buckets); ++i) {
        if (seconds <= buckets[i]) ++latency_counts[i];
    }
    ++latency_count;
    latency_sum += seconds;
}

void StatusBoard::sync(const Config& config) {
    std::map<std::string, InstanceStatus> next;
    for (const auto& inst : config.instances) {
        auto it = instances_.find(inst.name);
        InstanceStatus s = it != instances_.end() ? std::move(it->second) : InstanceStatus{};
        s.name = inst.name;
        s.org = inst.org;
        s.id = inst.id;
        s.provider = std::string(inst.source->provider);
        s.file = config.cert_file(inst);
        s.refresh_interval = std::chrono::duration<double>(inst.refresh_interval).count();
        if (!inst.server) {
            s.live_ok.reset();
            s.server_not_after.reset();
        }
        next.emplace(inst.name, std::move(s));
    }
    instances_ = std::move(next);
    std::map<std::string, OutputStatus> outputs;
    for (const auto& output : config.outputs) {
        auto it = outputs_.find(output.name);
        OutputStatus o = it != outputs_.end() ? std::move(it->second) : OutputStatus{};
        o.path = output.path.string();
        o.format = std::string(format_name(output.format));
        o.members = members_of(output, config.instances);
        outputs.emplace(output.name, std::move(o));
    }
    outputs_ = std::move(outputs);
}

void StatusBoard::record_output(const Output& output, const std::vector<std::string>& members,
                                const Outcome<OutputWrite>& done) {
    auto it = outputs_.find(output.name);
    if (it == outputs_.end()) return;
    auto& o = it->second;
    o.members = members;
    if (!done) {
        ++o.writes_failed;
        o.last_error = done.error();
        return;
    }
    o.last_error.clear();
    o.waiting_for = done.value().waiting_for;
    if (!o.waiting_for.empty()) return;
    o.certificates = done.value().certificates;
    if (done.value().changed) {
        ++o.writes_ok;
        o.last_change = sys_now();
    }
}

void StatusBoard::record_refresh(const std::string& name, const RefreshResult& r,
                                 double took_seconds) {
    global_.observe_latency(took_seconds);
    if (r.token_expiry) global_.token_expiry = r.token_expiry;
    auto* st = find(name);
    if (st == nullptr) return;
    st->attempted = true;
    if (r.live_ok) {
        st->live_ok = r.live_ok;
        st->server_not_after = r.server_not_after;
    }
    if (r.bundle) {  // installed: even when the live check after it failed
        st->file_valid = true;
        st->fingerprint = r.bundle->fingerprints();
        st->not_after = r.bundle->newest().not_after;
    }
    if (r.change != Change::unchanged) ++st->changes;
    if (!r.ok()) {
        ++st->failures;
        ++st->consecutive_failures;
        st->last_error = r.error();
        return;
    }
    ++(r.not_modified ? st->not_modified : st->successes);
    st->consecutive_failures = 0;
    st->last_error.clear();
    st->last_success = sys_now();
}

void StatusBoard::record_discovery(const std::string& source, std::optional<std::size_t> kept,
                                   const std::string& error) {
    auto& d = discovery_[source];
    if (kept) {
        d.kept = *kept;
        d.last_success = sys_now();
        d.last_error.clear();
    } else {
        d.last_error = error;
    }
}

void StatusBoard::record_pending_removal(const std::string& source,
                                         std::vector<std::string> names) {
    discovery_[source].pending_removal = std::move(names);
}

void StatusBoard::record_check(const std::string& name, const CheckResult& c) {
    auto* st = find(name);
    if (st == nullptr || !c.live_ok) return;  // the server could not be reached
    st->live_ok = c.live_ok;
    st->server_not_after = c.server_not_after;
}

void StatusBoard::record_hook(const std::string& name, bool ok) {
    if (auto* st = find(name)) {
        ++(ok ? st->hook_successes : st->hook_failures);
    } else if (auto it = outputs_.find(name); it != outputs_.end()) {
        ++(ok ? it->second.hook_successes : it->second.hook_failures);
    }
}

void StatusBoard::record_found(const std::string& name, const CertBundle& bundle) {
    auto* st = find(name);
    if (st == nullptr || st->attempted) return;
    st->file_valid = true;
    st->fingerprint = bundle.fingerprints();
    st->not_after = bundle.newest().not_after;
}

void StatusBoard::record_schedule(const std::string& name, SysTime next) {
    if (auto* st = find(name)) st->next_refresh = next;
}

InstanceStatus* StatusBoard::find(const std::string& name) {
    auto it = instances_.find(name);
    return it == instances_.end() ? nullptr : &it->second;
}

bool StatusBoard::all_attempted() const {
    for (const auto& [_, s] : instances_) {
        if (!s.attempted) return false;
    }
    return true;
}

Outcome<void> StatusBoard::ready() const {
    std::string missing;
    std::size_t count = 0;
    for (const auto& [name, s] : instances_) {
        if (s.file_valid) continue;
        if (++count <= 5) missing += (missing.empty() ? "" : ", ") + name;
    }
    if (count == 0) return Ok{};
    return fail(std::to_string(count) + " instance(s) without a valid CA file: " + missing +
                (count > 5 ? ", ..." : ""));
}

namespace {

// TEXT cut to at most MAX characters at a word's end, "..." marking the cut.
std::string shortened(const std::string& text, std::size_t max) {
    if (text.size() <= max) return text;
    auto cut = text.rfind(' ', max);
    if (cut == std::string::npos || cut < max / 2) cut = max;  // one long word
    while (cut > 0 && (text[cut - 1] == ' ' || text[cut - 1] == ':' || text[cut - 1] == ';')) {
        --cut;
    }
    return text.substr(0, cut) + "...";
}

}  // namespace

std::string StatusBoard::summary() const {
    std::size_t fresh = 0;
    std::string failing;
    std::size_t failing_count = 0;
    for (const auto& [name, s] : instances_) {
        if (s.consecutive_failures == 0 && s.file_valid) {
            ++fresh;
        } else if (++failing_count <= 3) {
            failing += (failing.empty() ? "" : ", ") + name +
                       (s.last_error.empty() ? "" : " (" + shortened(s.last_error, 80) + ")");
        }
    }
    std::string out = std::to_string(fresh) + "/" + std::to_string(instances_.size()) + " fresh";
    if (failing_count > 0) {
        out += "; failing: " + failing + (failing_count > 3 ? ", ..." : "");
    }
    return out;
}

namespace {

json::value time_or_null(const std::optional<SysTime>& t) {
    if (!t) return nullptr;
    return json::string(format_time(*t));
}

double seconds(SysTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

// Label values escape backslash, double quote and newline.
std::string escape(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

}  // namespace

std::string StatusBoard::to_json() const {
    json::array list;
    for (const auto& [name, s] : instances_) {
        json::object o{
            {"name", s.name},
            {"org", s.org},
            {"id", s.id},
            {"provider", s.provider},
            {"file", s.file},
            {"file_valid", s.file_valid},
            {"fingerprint", s.fingerprint},
            {"not_after", time_or_null(s.not_after)},
            {"last_success", time_or_null(s.last_success)},
            {"last_error", s.last_error.empty() ? json::value(nullptr) : json::value(s.last_error)},
            {"consecutive_failures", s.consecutive_failures},
            {"next_refresh", time_or_null(s.next_refresh)}};
        if (s.live_ok) {
            o["live_check_ok"] = *s.live_ok;
            o["server_not_after"] = time_or_null(s.server_not_after);
        }
        list.push_back(std::move(o));
    }
    const bool is_ready = ready().ok();
    json::object out{{"version", ROOTCERTD_VERSION},
                     {"ready", is_ready},
                     {"summary", summary()},
                     {"token_expiry", time_or_null(global_.token_expiry)},
                     {"instances", std::move(list)}};
    if (!discovery_.empty()) {
        json::array sources, refusals;
        for (const auto& [source, d] : discovery_) {
            json::array pending;
            for (const auto& name : d.pending_removal) pending.emplace_back(name);
            sources.push_back(
                json::object{{"source", source},
                             {"instances", d.kept},
                             {"last_success", time_or_null(d.last_success)},
                             {"last_error", d.last_error.empty() ? json::value(nullptr)
                                                                 : json::value(d.last_error)},
                             {"pending_removal", std::move(pending)}});
        }
        for (const auto& r : refused) {
            refusals.push_back(
                json::object{{"name", r.name}, {"source", r.source}, {"reason", r.reason}});
        }
        out["discovery"] = std::move(sources);
        out["refused"] = std::move(refusals);
    }
    if (!outputs_.empty()) {
        json::array outputs;
        for (const auto& [name, o] : outputs_) {
            json::array members, waiting;
            for (const auto& m : o.members) members.emplace_back(m);
            for (const auto& m : o.waiting_for) waiting.emplace_back(m);
            outputs.push_back(
                json::object{{"name", name},
                             {"path", o.path},
                             {"format", o.format},
                             {"members", std::move(members)},
                             {"waiting_for", std::move(waiting)},
                             {"certificates", o.certificates},
                             {"last_change", time_or_null(o.last_change)},
                             {"last_error", o.last_error.empty() ? json::value(nullptr)
                                                                 : json::value(o.last_error)}});
        }
        out["outputs"] = std::move(outputs);
    }
    return json::serialize(out) + "\n";
}

// One family after another, in the order /metrics shows them: a long
// function, but a table that reads best whole.
namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

// Per discovery source (label source).
void render_discovery(std::string& out, const StatusBoard& board) {
    if (!board.discovery().empty()) {
        family(out, "rootcertd_discovery_instances", "gauge",
               "Instances the discovery source's last successful list kept.");
        for (const auto& [source, d] : board.discovery()) {
            out += "rootcertd_discovery_instances{source=\"" + escape(source) + "\"} " +
                   std::to_string(d.kept) + "\n";
        }
        family(out, "rootcertd_discovery_pending_removals", "gauge",
               "Instances the source's last list left out, kept until the next list agrees.");
        for (const auto& [source, d] : board.discovery()) {
            out += "rootcertd_discovery_pending_removals{source=\"" + escape(source) + "\"} " +
                   std::to_string(d.pending_removal.size()) + "\n";
        }
        family(out, "rootcertd_discovery_last_success_timestamp_seconds", "gauge",
               "Unix time of the discovery source's last successful list.");
        for (const auto& [source, d] : board.discovery()) {
            if (d.last_success) {
                out += "rootcertd_discovery_last_success_timestamp_seconds{source=\"" +
                       escape(source) + "\"} " + number(seconds(*d.last_success)) + "\n";
            }
        }
    }
}

// Per output (label output).
void render_outputs(std::string& out, const StatusBoard& board) {
    if (!board.outputs().empty()) {
        const auto output_label = [](const std::string& name) {
            return "{output=\"" + escape(name) + "\"";
        };
        family(out, "rootcertd_output_certificates", "gauge",
               "CA certificates in the output's file at its last write or check.");
        for (const auto& [name, o] : board.outputs()) {
            out += "rootcertd_output_certificates" + output_label(name) + "} " +
                   std::to_string(o.certificates) + "\n";
        }
        family(out, "rootcertd_output_last_change_timestamp_seconds", "gauge",
               "Unix time the output's file last changed.");
        for (const auto& [name, o] : board.outputs()) {
            if (o.last_change) {
                out += "rootcertd_output_last_change_timestamp_seconds" + output_label(name) +
                       "} " + number(seconds(*o.last_change)) + "\n";
            }
        }
        family(out, "rootcertd_output_writes_total", "counter",
               "Writes that changed the output's file (success) and failed writes (failure).");
        for (const auto& [name, o] : board.outputs()) {
            out += "rootcertd_output_writes_total" + output_label(name) + ",result=\"success\"} " +
                   std::to_string(o.writes_ok) + "\n";
            out += "rootcertd_output_writes_total" + output_label(name) + ",result=\"failure\"} " +
                   std::to_string(o.writes_failed) + "\n";
        }
    }
}

// The token's expiry and the refresh latency histogram.
void render_global(std::string& out, const GlobalStatus& g) {
    if (g.token_expiry) {
        family(out, "rootcertd_token_expiry_timestamp_seconds", "gauge",
               "Unix time when the API token (a JWT) expires, from its exp claim.");
        out +=
            "rootcertd_token_expiry_timestamp_seconds " + number(seconds(*g.token_expiry)) + "\n";
    }
    family(out, "rootcertd_refresh_duration_seconds", "histogram",
           "Time for one refresh: request, validation and install.");
    for (std::size_t i = 0; i < std::size(GlobalStatus::buckets); ++i) {
        out += "rootcertd_refresh_duration_seconds_bucket{le=\"" +
               number(GlobalStatus::buckets[i]) + "\"} " + std::to_string(g.latency_counts[i]) +
               "\n";
    }
    out += "rootcertd_refresh_duration_seconds_bucket{le=\"+Inf\"} " +
           std::to_string(g.latency_count) + "\n";
    out += "rootcertd_refresh_duration_seconds_sum " + number(g.latency_sum) + "\n";
    out += "rootcertd_refresh_duration_seconds_count " + std::to_string(g.latency_count) + "\n";
}

}  // namespace

std::string render_metrics(const StatusBoard& board) {
    std::string out;
    const auto family = [&](const char* name, const char* type, const char* help) {
        rootcertd::family(out, name, type, help);
    };
    const auto labels = [](const InstanceStatus& s, const std::string& extra = "") {
        return "{name=\"" + escape(s.name) + "\",org=\"" + escape(s.org) + "\",id=\"" +
               escape(s.id) + "\"" + extra + "}";
    };
    // One family with a sample per instance; VALUE returns nothing to skip one.
    const auto per_instance = [&](const char* name, const char* type, const char* help,
                                  auto value) {
        family(name, type, help);
        for (const auto& [_, s] : board.instances()) {
            if (const std::optional<std::string> v = value(s))
                out += name + labels(s) + " " + *v + "\n";
        }
    };
    // A counter split by result="success"|"failure", and for refreshes
    // "not_modified" (the source answered 304).
    const auto by_result = [&](const char* name, const char* help, auto success, auto failure,
                               bool not_modified = false) {
        family(name, "counter", help);
        for (const auto& [_, s] : board.instances()) {
            out +=
                name + labels(s, ",result=\"success\"") + " " + std::to_string(success(s)) + "\n";
            out +=
                name + labels(s, ",result=\"failure\"") + " " + std::to_string(failure(s)) + "\n";
            if (not_modified) {
                out += name + labels(s, ",result=\"not_modified\"") + " " +
                       std::to_string(s.not_modified) + "\n";
            }
        }
    };
    const auto time_of = [](const std::optional<SysTime>& t) -> std::optional<std::string> {
        if (!t) return std::nullopt;
        return number(seconds(*t));
    };

    family("rootcertd_build_info", "gauge", "Always 1; the version is a label.");
    out += std::string("rootcertd_build_info{version=\"") + ROOTCERTD_VERSION + "\"} 1\n";
    family("rootcertd_instances", "gauge", "Instances in the running configuration.");
    out += "rootcertd_instances " + std::to_string(board.instances().size()) + "\n";
    family("rootcertd_ready", "gauge", "1 when every instance has a valid CA file in place.");
    out += std::string("rootcertd_ready ") + (board.ready() ? "1" : "0") + "\n";

    by_result(
        "rootcertd_refresh_total", "Refreshes by result.",
        [](const InstanceStatus& s) { return s.successes; },
        [](const InstanceStatus& s) { return s.failures; }, true);
    per_instance("rootcertd_consecutive_failures", "gauge",
                 "Failed refreshes since the last success.", [](const InstanceStatus& s) {
                     return std::optional(std::to_string(s.consecutive_failures));
                 });
    per_instance("rootcertd_cert_changes_total", "counter",
                 "Times the CA file was created or replaced.",
                 [](const InstanceStatus& s) { return std::optional(std::to_string(s.changes)); });
    per_instance("rootcertd_refresh_interval_seconds", "gauge",
                 "The instance's configured time between refreshes.",
                 [](const InstanceStatus& s) { return std::optional(number(s.refresh_interval)); });
    per_instance("rootcertd_last_success_timestamp_seconds", "gauge",
                 "Unix time of the last successful refresh.",
                 [&](const InstanceStatus& s) { return time_of(s.last_success); });
    per_instance("rootcertd_cert_not_after_timestamp_seconds", "gauge",
                 "Unix time when the latest-expiring CA in the installed file expires.",
                 [&](const InstanceStatus& s) { return time_of(s.not_after); });
    per_instance("rootcertd_live_check_success", "gauge",
                 "1 when the server verified against the installed file at the last live check.",
                 [](const InstanceStatus& s) -> std::optional<std::string> {
                     if (!s.live_ok) return std::nullopt;
                     return *s.live_ok ? "1" : "0";
                 });
    per_instance("rootcertd_server_cert_not_after_timestamp_seconds", "gauge",
                 "Unix time when the certificate the server presented expires.",
                 [&](const InstanceStatus& s) { return time_of(s.server_not_after); });
    by_result(
        "rootcertd_hook_runs_total", "on_change hook runs by result.",
        [](const InstanceStatus& s) { return s.hook_successes; },
        [](const InstanceStatus& s) { return s.hook_failures; });

    render_discovery(out, board);
    render_outputs(out, board);
    render_global(out, board.global());
    return out;
}

}  // namespace rootcertd
