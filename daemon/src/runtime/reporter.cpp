#include "rootcertd/runtime/reporter.hpp"

#include <spdlog/spdlog.h>

namespace rootcertd {

LogFields labels_of(const Instance& instance) {
    if (!instance.org.empty()) {  // a Tembo instance: its org and id say which
        return {{"name", instance.name}, {"org", instance.org}, {"id", instance.id}};
    }
    return {{"name", instance.name}, {"provider", std::string(instance.source->provider)}};
}

namespace {

// LABELS' fields; none when it is empty.
LogFields fields_of(const Reporter::Labels& labels) { return labels ? labels() : LogFields{}; }

}  // namespace

std::string human(Duration d) {
    const auto ms = d.count();
    if (ms < 10'000) return std::to_string(ms) + "ms";
    if (ms < 600'000) return std::to_string(ms / 1000) + "s";
    if (ms < 36'000'000) return std::to_string(ms / 60'000) + "m";
    return std::to_string(ms / 3'600'000) + "h";
}

void Reporter::refreshed(const std::string& name, const Labels& labels, const RefreshResult& r,
                         InstanceLog& log, std::optional<Duration> retry,
                         std::chrono::steady_clock::time_point now) {
    const auto say = [&](spdlog::level::level_enum level, const std::string& text,
                         const LogFields& extra = {}) {
        LogFields fields = fields_of(labels);
        fields.insert(fields.end(), extra.begin(), extra.end());
        log_event(level, name + ": " + text, fields);
    };
    // A daemon retries, so a failure is a warning; --once ends with it.
    const auto failure_level = retry ? spdlog::level::warn : spdlog::level::err;
    const std::string retrying = retry ? "; retrying in " + human(*retry) : "";

    if (r.warning.empty()) {
        log.warnings.on_success();
    } else if (log.warnings.on_failure(r.warning, now) != FailureLog::Verdict::quiet) {
        say(spdlog::level::warn, r.warning);
    }
    if (log.outage && !r.unreachable_origin) {
        if (const auto n = unreachable_[*log.outage].on_success(); n > 0) {
            say(spdlog::level::info, *log.outage + " answers again after " + std::to_string(n) +
                                         " failed refresh(es) of its instances");
        }
        log.outage.reset();
    }
    if (!retry && failed_pass(r)) {  // --once: named again in the summary
        failed_.emplace_back(name,
                             r.ok() ? "live check: " + r.live_unreachable->message : r.error());
    }
    if (r.ok() && !retry && r.live_unreachable) {
        say(spdlog::level::err,
            "live check: the server could not be reached: " + r.live_unreachable->message,
            {{"error", r.live_unreachable->message},
             {"stage", stage_name(r.live_unreachable->stage)}});
    }
    if (r.ok()) {
        if (const auto n = log.failures.on_success(); n > 0) {
            say(spdlog::level::info, "recovered after " + std::to_string(n) + " failed attempt(s)");
        }
        if (retry) spdlog::debug("{}: refreshed; next in {}", name, human(*retry));
        return;
    }
    const std::string& error = r.error();
    LogFields detail{{"error", error}, {"stage", stage_name(r.failure->stage)}};
    if (r.http_status != 0) detail.emplace_back("status", std::to_string(r.http_status));
    // A failure repeats when its stage and status do, whatever details its
    // message carries (a timing, a peer's changing words).
    const std::string key =
        std::string(stage_name(r.failure->stage)) + " " + std::to_string(r.http_status);
    if (r.unreachable_origin) {  // logged for the origin, by whichever instance meets it first
        const auto& origin = *r.unreachable_origin;
        log.outage = origin;
        auto& origin_log = unreachable_[origin];
        switch (origin_log.on_failure(key, now)) {
            case FailureLog::Verdict::log:
                say(failure_level,
                    "refresh failed: " + error + retrying + "; other instances that cannot reach " +
                        origin +
                        (retry ? " are logged at debug level until it answers"
                               : " are counted at the end"),
                    detail);
                break;
            case FailureLog::Verdict::repeat:
                say(failure_level,
                    origin + " still unreachable after " + std::to_string(origin_log.failures()) +
                        " failed refresh(es) of its instances: " + error,
                    detail);
                break;
            case FailureLog::Verdict::quiet:
                spdlog::debug("{}: refresh failed: {}", name, error);
                break;
        }
        return;
    }
    switch (log.failures.on_failure(key, now)) {
        case FailureLog::Verdict::log:
            say(failure_level, "refresh failed: " + error + retrying, detail);
            break;
        case FailureLog::Verdict::repeat:
            say(failure_level,
                "still failing after " + std::to_string(log.failures.failures()) +
                    " attempts: " + error + retrying,
                detail);
            break;
        case FailureLog::Verdict::quiet:
            spdlog::debug("{}: refresh failed again: {}", name, error);
            break;
    }
}

void Reporter::summarize_pass(std::size_t total, std::chrono::milliseconds took) const {
    for (const auto& [origin, log] : unreachable_) {
        if (log.failures() > 0) {
            spdlog::error("{} instance(s) could not reach {}", log.failures(), origin);
        }
    }
    spdlog::info("refreshed {}/{} instance(s) in {} ms{}", total - failed_.size(), total,
                 took.count(), failed_.empty() ? "" : "; failed:");
    constexpr std::size_t named = 20;
    for (std::size_t i = 0; i < failed_.size() && i < named; ++i) {
        log_event(spdlog::level::err, "failed: " + failed_[i].first + ": " + failed_[i].second,
                  {{"name", failed_[i].first}});
    }
    if (failed_.size() > named) {
        spdlog::error("failed: {} more instance(s), named in the lines above",
                      failed_.size() - named);
    }
}

namespace {
// "a, b, c and 4 more": at most five of NAMES.
std::string some_of(const std::vector<std::string>& names) {
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", " : "") + names[i];
    if (names.size() > 5) out += " and " + std::to_string(names.size() - 5) + " more";
    return out.empty() ? "none" : out;
}
}  // namespace

void log_output_write(const Output& output, const std::vector<std::string>& members,
                      const Outcome<OutputWrite>& done) {
    const LogFields fields{{"output", output.name}};
    const std::string head = "output " + output.name + ": ";
    if (!done) {
        log_event(
            spdlog::level::err,
            head + "not written, " + output.path.string() + " kept as it was: " + done.error(),
            fields);
        return;
    }
    const auto& w = done.value();
    if (!w.waiting_for.empty()) {
        log_event(spdlog::level::info,
                  head + "waiting for the file of " + std::to_string(w.waiting_for.size()) +
                      " of " + std::to_string(members.size()) + " member(s) (" +
                      some_of(w.waiting_for) + ") before the first write",
                  fields);
    } else if (w.changed) {
        log_event(spdlog::level::info,
                  head + "wrote " + output.path.string() + " (" +
                      std::string(format_name(output.format)) + ", " +
                      std::to_string(w.certificates) + " CA(s) of " +
                      std::to_string(members.size()) + " instance(s)); added " + some_of(w.added) +
                      "; removed " + some_of(w.removed),
                  fields);
    } else {
        log_event(spdlog::level::debug, head + "unchanged", fields);
    }
}

namespace {

std::string summary(const CertBundle& b) {
    const auto& n = b.newest();
    return "sha256=" + b.fingerprints() + " subject='" + n.subject +
           "' notAfter=" + format_time(n.not_after);
}

std::string describe_rotation(const Composition& c) {
    std::string out;
    for (const auto& a : c.added) out += "; added " + a.sha256 + " (" + a.subject + ")";
    for (const auto& k : c.kept) {
        out += "; kept " + k.sha256 + " (" + k.subject + ") until " + format_time(k.until);
    }
    for (const auto& d : c.dropped) out += "; dropped " + d;
    return out;
}

}  // namespace

void log_change(const Instance& inst, const std::filesystem::path& path, const Installed& done,
                const CertBundle& installed, const Composition& c) {
    LogFields fields = labels_of(inst);
    fields.insert(fields.end(), {{"path", path.string()},
                                 {"fingerprint", installed.fingerprints()},
                                 {"not_after", format_time(installed.newest().not_after)}});
    if (done.change == Change::created) {
        log_event(spdlog::level::info,
                  inst.name + ": installed CA at " + path.string() + ": " + summary(installed) +
                      describe_rotation(c),
                  fields);
        return;
    }
    const auto previous = parse_bundle(done.previous.value_or(""));
    const std::string old = previous ? previous->fingerprints() : "unparseable";
    fields.emplace_back("old_fingerprint", old);
    // rootcertd only ever writes whole bundles in its own encoding: bytes it
    // cannot parse, or the same CAs written differently, came from elsewhere.
    if (!previous || old == installed.fingerprints()) {
        log_event(spdlog::level::warn,
                  inst.name + ": restored " + path.string() +
                      ": something other than rootcertd had changed it (" +
                      (previous ? "same CAs, other bytes" : "not a valid bundle") + "); now " +
                      summary(installed),
                  fields);
        return;
    }
    log_event(spdlog::level::info,
              inst.name + ": CA changed at " + path.string() + ": old sha256=" + old + " new " +
                  summary(installed) + describe_rotation(c),
              fields);
}

void Reporter::checked(const std::string& name, const Labels& labels, const CheckResult& c,
                       FailureLog& log, std::chrono::steady_clock::time_point now) {
    if (!c.problem) {
        if (log.on_success() > 0) {
            log_event(spdlog::level::info, name + ": live check passes again", fields_of(labels));
        }
        return;
    }
    const std::string key = std::string(stage_name(c.problem->stage)) + (c.refresh_now ? "+" : "");
    if (log.on_failure(key, now) == FailureLog::Verdict::quiet) return;
    LogFields fields = fields_of(labels);
    fields.emplace_back("error", c.problem->message);
    fields.emplace_back("stage", stage_name(c.problem->stage));
    log_event(spdlog::level::warn, name + ": live check: " + c.problem->message, fields);
}

void log_hook_run(const std::string& name, const LogFields& labels, const std::string& program,
                  const HookRun& run, std::optional<Duration> retry) {
    log_event(run ? spdlog::level::info : spdlog::level::warn,
              name + ": on_change " + program + " " + (run ? run.value() : run.error()) +
                  (retry ? "; retrying in " + human(*retry) : ""),
              labels);
}

void log_unreadable_state(const std::string& name, const std::string& why) {
    spdlog::warn("{}: ignoring unreadable rotation state: {}", name, why);
}

void log_server_behind(const Instance& instance, const std::string& server) {
    spdlog::warn(
        "{}: server {} does not yet present a certificate under the new CA; "
        "installing the new CA together with the current one",
        instance.name, server);
}

void log_discovery_pass(const DiscoveredAll& pass) {
    for (const auto& [source, failure] : pass.failures) spdlog::error("{}", failure.message);
    for (const auto& r : pass.composed.refused) {
        spdlog::error("discovery {}: refused '{}': {}", r.source, r.name, r.reason);
    }
    for (const auto& [source, kept] : pass.kept) {
        spdlog::info("discovery {}: {} instance(s) kept", source, kept);
    }
}

void log_refused(const std::vector<Refused>& refused, std::set<std::string>& logged) {
    for (const auto& r : refused) {
        if (logged.insert(r.source + "\n" + r.name).second) {
            spdlog::warn("discovery {}: refused '{}': {}", r.source, r.name, r.reason);
        }
    }
}

void log_listed(const Discovery& source, unsigned failures, const Fleet::Accepted& accepted,
                std::size_t kept, const FleetDiff& change) {
    const std::string label = source.label();
    if (failures > 0)
        spdlog::info("discovery {}: listed again after {} failure(s)", label, failures);
    if (accepted.newly_pending) {
        spdlog::warn(
            "discovery {}: the list leaves out {} of {} instance(s): {}; kept until the next "
            "list, in {}, leaves them out too (confirm_mass_removal)",
            label, accepted.pending.size(), accepted.before, join_names(accepted.pending),
            human(source.interval));
    }
    if (!change.empty()) {
        spdlog::info("discovery {}: {} instance(s) kept; {}", label, kept, change.describe());
    }
}

void log_list_failed(const Failure& failure, FailureLog& log) {
    if (log.on_failure(std::string(stage_name(failure.stage)), std::chrono::steady_clock::now()) !=
        FailureLog::Verdict::quiet) {
        spdlog::warn("{}; the instances it found before are kept", failure.message);
    }
}

}  // namespace rootcertd
