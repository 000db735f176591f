#include "rootcertd/runtime/refresh.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>

#include "rootcertd/core/blocking.hpp"
#include "rootcertd/core/logging.hpp"
#include "rootcertd/pki/server_probe.hpp"
#include "rootcertd/runtime/reporter.hpp"
#include "rootcertd/sources/source.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

// CANDIDATE plus the certificates of CURRENT it lacks.
std::string union_of(const std::string& candidate, const std::string& current) {
    auto a = parse_bundle(candidate);
    auto b = parse_bundle(current);
    if (!a || !b) return candidate;
    std::string out = candidate;
    for (const auto& c : b->certs) {
        if (a->fingerprints().find(c.sha256) == std::string::npos) out += c.pem;
    }
    return out;
}

std::string server_of(const Instance& inst) {
    return inst.server->host + ":" + std::to_string(inst.port);
}

// Appends W to the "; "-separated list of warnings LIST.
void add_to(std::string& list, const std::string& w) { list += (list.empty() ? "" : "; ") + w; }

asio::awaitable<Outcome<PresentedChain>> probe(std::shared_ptr<Services> s, const Instance& inst) {
    return probe_server(s->executor, s->resolver, inst.server->host, inst.port,
                        {s->config.connect_timeout, s->config.timeout});
}

// The bundle validated before for these exact bytes, when none of its
// certificates has expired since and one of them is valid NOW.
std::optional<CertBundle> cached_bundle(const Services& s, std::string_view key, SysTime now) {
    const CertBundle* hit = s.seen.validated.find(key);
    if (hit == nullptr) return std::nullopt;
    const auto& certs = hit->certs;
    if (std::any_of(certs.begin(), certs.end(),
                    [&](const CertInfo& c) { return c.not_after < now; }) ||
        std::none_of(certs.begin(), certs.end(),
                     [&](const CertInfo& c) { return c.not_before <= now; })) {
        return std::nullopt;
    }
    return *hit;
}

// What the file and its rotation state hold now: one snapshot per refresh.
struct OnDisk {
    std::optional<std::string> file;
    FileMeta meta;  // the file's mode, owner and group
    std::optional<std::string> state;
};

// The bytes to install, and the server's chain when the plan consulted it.
struct Plan {
    Composition composition;
    std::string pem;
    std::optional<PresentedChain> chain;
};

// Stage 3: the current file and rotation state. A file small enough is read
// on the loop (a trip through the pool costs it more, and the frame of a
// coroutine is not needed); a bigger one on the pool. The state file is
// looked for only where one may be: that is decided on the loop, which
// alone touches the states in memory.
bool state_file_wanted(const FileState& files, const std::string& name) {
    return !files.states.contains(name) &&
           (!files.state_files || files.state_files->contains(name + ".json"));
}

// Nullopt: the file is bigger than LIMIT, and nothing was read.
std::optional<Outcome<OnDisk>> read_current(const FileState& files, const std::string& name,
                                            bool with_state, std::size_t limit) {
    FileMeta meta;
    auto file = files.store.read_up_to(name + ".crt", limit, &meta);
    if (!file) return std::nullopt;
    if (!*file) return Outcome<OnDisk>(fail(file->error()));
    OnDisk d{std::move(file->value()), meta, std::nullopt};
    if (with_state) {
        if (auto st = files.state_store.read(name + ".json"); st) d.state = std::move(st.value());
    }
    return Outcome<OnDisk>(std::move(d));
}

// The job holds S and the name itself: it may outlive this frame at a shutdown.
asio::awaitable<Outcome<OnDisk>> read_current_on_pool(std::shared_ptr<Services> s, std::string name,
                                                      bool with_state) {
    auto read_all = [s, name, with_state] {
        return *read_current(s->files, name, with_state, SIZE_MAX);
    };
    co_return co_await run_blocking(s->blocking, std::move(read_all));
}

// The rotation state this refresh starts from: the one in memory, else the
// state file, else (a file from before rootcertd managed it) the file. One
// lookup for the whole refresh: std::map entries stay put, and an
// instance's entry is only touched by its own loop.
std::map<std::string, RotationState>::iterator rotation_state(FileState& files,
                                                              const Instance& inst,
                                                              const OnDisk& disk) {
    auto [entry, fresh] = files.states.try_emplace(inst.name);
    if (!fresh) return entry;
    if (disk.state) {
        if (auto st = parse_state(*disk.state)) {
            entry->second = std::move(st.value());
        } else {
            log_unreadable_state(inst.name, st.error());
        }
    } else if (disk.file) {
        entry->second.served = *disk.file;
    }
    return entry;
}

// Stage 4: what the file should hold: the served CAs plus those kept for
// the overlap.
Plan plan_file(const Instance& inst, const RotationState& state, const CertBundle& served,
               SysTime now) {
    Plan plan{compose(state, served, inst.keep_previous, now), {}, {}};
    plan.pem = plan.composition.pem;
    return plan;
}

// Before clients' trust changes from CURRENT, the live server is asked: when
// it does not yet present a chain under the planned bundle but does under
// CURRENT, both are installed together.
bool plan_needs_server(const Instance& inst, const Plan& plan,
                       const std::optional<std::string>& current) {
    return inst.server && current && plan.pem != *current;
}

asio::awaitable<void> consult_server(std::shared_ptr<Services> s, const Instance& inst,
                                     const std::string& current, Plan& plan, std::string& warning) {
    auto probed = co_await probe(s, inst);
    if (!probed) {
        add_to(warning, "live check before install: " + probed.error());
        co_return;
    }
    plan.chain = std::move(probed.value());
    const auto next = verify_chain(*plan.chain, plan.pem, inst.server->host);
    if (!next.ok() && !next.host_mismatch &&
        verify_chain(*plan.chain, current, inst.server->host).ok()) {
        plan.pem = union_of(plan.pem, current);
        log_server_behind(inst, server_of(inst));
    }
}

// Stage 5: the rotation state, then the file. State is kept on disk only
// while a previous CA is kept (else the file itself says what was served),
// and saved before the file: a crash in between can only lengthen an
// overlap, never lose one. A file that already holds these bytes and
// ownership is not handed to the install queue (the common case); others
// share one flush with concurrent installs (group commit).
bool saves_state(const RotationState& state, const Plan& plan) {
    const RotationState& next = plan.composition.state;
    return (!next.kept.empty() || !state.kept.empty()) && !(next == state);
}

bool file_is_current(const Instance& inst, const Plan& plan, const OnDisk& disk) {
    return disk.file && *disk.file == plan.pem && disk.meta.matches(inst.file);
}

// Nothing to write (the common case): no coroutine frame is needed.
bool commits_nothing(const Instance& inst, const RotationState& state, const Plan& plan,
                     const OnDisk& disk) {
    return !saves_state(state, plan) && file_is_current(inst, plan, disk);
}

asio::awaitable<Outcome<Installed>> commit(std::shared_ptr<Services> s, const Instance& inst,
                                           const RotationState& state, const Plan& plan,
                                           const OnDisk& disk) {
    FileState& files = s->files;  // the pool's job holds S itself
    const auto state_name = inst.name + ".json";
    const RotationState& next = plan.composition.state;
    const bool keeps = !next.kept.empty();
    if (saves_state(state, plan)) {
        auto save = [s, state_name, keeps,
                     text = keeps ? serialize_state(next) : std::string()]() -> Outcome<bool> {
            if (!keeps) return s->files.state_store.remove(state_name);
            auto saved =
                s->files.state_store.install(state_name, text, FileOwnership{0600, {}, {}});
            if (!saved) return saved.failure();
            return true;
        };
        auto saved = co_await run_blocking(s->blocking, std::move(save));
        if (!saved) {
            co_return fail(Stage::install,
                           "save rotation state of " + inst.name + ": " + saved.error());
        }
        if (files.state_files) {
            if (keeps) {
                files.state_files->insert(state_name);
            } else {
                files.state_files->erase(state_name);
            }
        }
    }
    if (file_is_current(inst, plan, disk)) co_return Installed{};
    InstallJob job{inst.name + ".crt", plan.pem, inst.file};  // GCC12-COROUTINE-TEMPORARY
    auto installed = co_await files.installs->install(std::move(job));
    if (!installed)
        co_return fail(Stage::install, "install " + inst.name + ": " + installed.error());
    co_return installed;
}

// Stage 6: would a verify-full client reach the server with the file now?
// Reuses the chain the plan fetched; a server that cannot be reached says
// nothing either way.
asio::awaitable<void> verify_live(std::shared_ptr<Services> s, const Instance& inst,
                                  const std::string& installed, std::optional<PresentedChain> chain,
                                  RefreshResult& result) {
    if (!chain) {
        auto probed = co_await probe(s, inst);
        if (!probed) {
            result.live_unreachable = probed.failure();
            co_return;
        }
        chain = std::move(probed.value());
    }
    const auto verdict = verify_chain(*chain, installed, inst.server->host);
    result.live_ok = verdict.ok();
    result.server_not_after = chain->leaf_not_after;
    if (verdict.host_mismatch) {
        add_to(result.warning, verdict.reason());
    } else if (!verdict.ok()) {
        result.failure =
            fail(Stage::live, "server " + server_of(inst) +
                                  " does not verify against the installed file (" +
                                  verdict.reason() + "); the API has not served its new CA yet");
    }
}

// Stage 2: only CA certificates (or leaves dropped, where the source says
// so), expired ones left out, at least one valid now. An answer whose CA
// validated is remembered with it.
Outcome<CertBundle> accepted(Services& s, const Instance& inst, const Fetched& fetched,
                             Outcome<CertBundle> served) {
    if (!served) {
        return fail(Stage::validate, describe_request(inst) + ": invalid CA: " + served.error());
    }
    for (const auto& left_out : served->dropped) {
        spdlog::debug("{}: left out {}", inst.name, left_out);
    }
    if (fetched.extracted_from) {
        s.seen.extracted.put(*fetched.extracted_from, {inst.source->reading, fetched.pem.value()},
                             fetched.pem.value().size());
    }
    return served;
}

// Bytes validated before, found without a coroutine frame (a fleet's warm
// pass serves the same CA thousands of times). Nullopt: they need validating.
std::optional<Outcome<CertBundle>> validated_before(Services& s, const Instance& inst,
                                                    const Fetched& fetched, SysTime now) {
    if (inst.source->reading.drop_leaves) return std::nullopt;  // kept apart, under another key
    auto hit = cached_bundle(s, fetched.pem.value(), now);
    if (!hit) return std::nullopt;
    return accepted(s, inst, fetched, std::move(*hit));
}

asio::awaitable<Outcome<CertBundle>> validate_served(std::shared_ptr<Services> s,
                                                     const Instance& inst, const Fetched& fetched,
                                                     SysTime now) {
    auto served =
        co_await validate_with_cache(s, fetched.pem.value(), now, inst.source->reading.drop_leaves);
    co_return accepted(*s, inst, fetched, std::move(served));
}

// After a commit: the rotation state the file now reflects, and the
// validators of the answer it came from (a 304 keeps the last ones).
void remember(Fetcher& fetch, const Instance& inst, RotationState& state, Plan& plan,
              Fetched& fetched) {
    state = std::move(plan.composition.state);
    if (fetched.validators) {
        fetch.validators.insert_or_assign(inst.name, std::move(*fetched.validators));
    } else if (!fetched.not_modified) {
        fetch.validators.erase(inst.name);
    }
}

// The facts of an installed file for RESULT: the change, the bundle it holds
// (the served one, or the plan's union) and whether its newest CA expires
// within the expiry_warning window.
void record_install(const Services& s, const Instance& inst, const Installed& installed,
                    CertBundle served, const Plan& plan, SysTime now, RefreshResult& result) {
    const CertInfo newest = served.newest();
    auto bundle =
        plan.pem == served.pem ? Outcome<CertBundle>(std::move(served)) : parse_bundle(plan.pem);
    if (installed.change != Change::unchanged) {
        log_change(inst, s.config.cert_path(inst), installed, bundle.value(), plan.composition);
    }
    result.change = installed.change;
    result.bundle = std::move(bundle.value());
    if (newest.not_after - now < s.config.expiry_warning) {
        add_to(result.warning, "newest CA '" + newest.subject + "' expires " +
                                   format_time(newest.not_after) +
                                   ", within the expiry_warning window");
    }
}

}  // namespace

// Stages 2 to 5 usually need not wait: each runs on the loop first and
// takes a coroutine frame only when it must (new bytes to validate, a big
// file, a server to ask, a file to write). A fleet's warm pass runs them
// thousands of times.
asio::awaitable<RefreshResult> refresh(std::shared_ptr<Services> s, const Instance& inst) {
    RefreshResult result;
    const auto now = sys_now();
    const auto failed = [&result](Failure why) {
        result.failure = std::move(why);
        return result;
    };
    // 1. Fetch the CA text from the instance's source.
    auto fetched = co_await fetch_ca(s, inst);
    result.http_status = fetched.http_status;
    result.retry_after = fetched.retry_after;
    result.token_expiry = fetched.token_expiry;
    result.not_modified = fetched.not_modified;
    if (!fetched.pem) {
        if (fetched.pem.unreachable()) result.unreachable_origin = inst.source->api.origin();
        co_return failed(fetched.pem.failure());
    }
    // 2. Validate it.
    auto served = validated_before(*s, inst, fetched, now);
    if (!served) served = co_await validate_served(s, inst, fetched, now);
    if (!*served) co_return failed(served->failure());
    // 3. Read what the file and the rotation state hold now.
    const bool with_state = state_file_wanted(s->files, inst.name);
    auto disk = read_current(s->files, inst.name, with_state, CertStore::loop_read_limit);
    if (!disk) disk = co_await read_current_on_pool(s, inst.name, with_state);
    if (!*disk) co_return failed(fail(Stage::read, "install " + inst.name + ": " + disk->error()));
    const OnDisk& current = disk->value();
    const auto entry = rotation_state(s->files, inst, current);
    // 4. Plan the file: served CAs, kept ones, and the live server's say.
    auto plan = plan_file(inst, entry->second, served->value(), now);
    if (plan_needs_server(inst, plan, current.file)) {
        co_await consult_server(s, inst, *current.file, plan, result.warning);
    }
    // 5. Commit: the rotation state, then the file, atomically and durably.
    Outcome<Installed> installed = Installed{};
    if (!commits_nothing(inst, entry->second, plan, current)) {
        installed = co_await commit(s, inst, entry->second, plan, current);
    }
    if (!installed) co_return failed(installed.failure());
    remember(s->fetch, inst, entry->second, plan, fetched);
    // From here the file holds the planned bundle, whatever the live check
    // says next: a change is a change (its hook runs, it is counted).
    record_install(*s, inst, installed.value(), std::move(served->value()), plan, now, result);
    // 6. Verify live: would a verify-full client reach the server now?
    if (inst.server) co_await verify_live(s, inst, plan.pem, std::move(plan.chain), result);
    co_return result;
}

struct ContentCaches::Validation {
    explicit Validation(asio::any_io_executor ex)
        : done(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer done;  // cancelled when `result` is set
    std::optional<Outcome<CertBundle>> result;
};

asio::awaitable<Outcome<CertBundle>> validate_with_cache(std::shared_ptr<Services> s,
                                                         std::string pem, SysTime now,
                                                         bool drop_leaves) {
    // Bundles validated with leaves dropped are kept apart.
    const std::string prefixed = drop_leaves ? "leaves dropped\n" + pem : std::string();
    const std::string& key = drop_leaves ? prefixed : pem;
    if (auto hit = cached_bundle(*s, key, now)) co_return std::move(*hit);
    if (const auto it = s->seen.validating.find(key); it != s->seen.validating.end()) {
        const auto running = it->second;
        co_await running->done.async_wait(asio::as_tuple(asio::use_awaitable));
        if (running->result) co_return *running->result;
        co_return fail("stopped while the CA was being validated");
    }
    auto running = std::make_shared<ContentCaches::Validation>(co_await asio::this_coro::executor);
    s->seen.validating.emplace(key, running);
    auto check = [text = pem, now, drop_leaves] { return validate_bundle(text, now, drop_leaves); };
    auto fresh = co_await run_blocking(s->blocking, std::move(check));
    s->seen.validating.erase(key);
    running->result = fresh;
    running->done.cancel();
    if (fresh) s->seen.validated.put(key, fresh.value(), 2 * fresh.value().pem.size());
    co_return fresh;
}

asio::awaitable<CheckResult> check_live(std::shared_ptr<Services> s, Instance inst) {
    CheckResult result;
    auto probed = co_await probe(s, inst);
    if (!probed) {
        result.problem = probed.failure();
        co_return result;
    }
    auto read = [s, file_name = inst.name + ".crt"] { return s->files.store.read(file_name); };
    auto file = co_await run_blocking(s->blocking, std::move(read));
    if (!file || !file->has_value()) {
        result.problem = fail(Stage::read, "no installed file to check yet");
        co_return result;
    }
    const auto verdict = verify_chain(probed.value(), *file.value(), inst.server->host);
    result.live_ok = verdict.ok();
    result.server_not_after = probed->leaf_not_after;
    if (verdict.ok()) co_return result;
    result.problem = verdict.failure;
    if (!verdict.host_mismatch) {
        result.problem->message = "server " + server_of(inst) + " no longer verifies against " +
                                  s->config.cert_path(inst).string() + " (" + verdict.reason() +
                                  "); refreshing from the API now";
        result.refresh_now = true;
    }
    co_return result;
}

}  // namespace rootcertd
