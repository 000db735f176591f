#include "rootcertd/refresh.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdlib>

#include "rootcertd/blocking.hpp"
#include "rootcertd/ca_response.hpp"
#include "rootcertd/logging.hpp"
#include "rootcertd/server_probe.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

ProxyRoute proxy_route(const Config& config) {
    auto route = resolve_proxy(config.proxy, std::getenv);
    if (!route) throw std::runtime_error(route.error());
    return std::move(route.value());
}

ClientOptions client_options(const Services& s) {
    ClientOptions options;
    options.resolver = s.resolver;
    options.ca_file = s.config.ca_file;
    options.timeout = s.config.timeout;
    options.connect_timeout = s.config.connect_timeout;
    options.proxy = s.proxy;
    if (s.proxy_auth) {
        options.proxy_credentials = [auth = s.proxy_auth] { return auth->get(); };
    }
    return options;
}

}  // namespace

std::size_t admission_slots(const Config& config) {
    return std::max<std::size_t>(64, 4 * std::size_t{config.concurrency});
}

Services::Services(asio::any_io_executor ex, Config cfg, asio::thread_pool& blocking_pool)
    : config(std::move(cfg)),
      proxy(proxy_route(config)),
      proxy_auth(config.proxy_auth_file ? std::make_shared<TokenSource>(TokenSource::from_file(
                                              *config.proxy_auth_file, "proxy auth file"))
                                        : nullptr),
      executor(ex),
      resolver(make_resolver(ex)),
      client(make_https_client(ex, client_options(*this))),
      token(config.token_file ? TokenSource::from_file(*config.token_file)
                              : TokenSource::from_env(*config.token_env)),
      store(config.cert_dir),
      installs(std::make_shared<InstallQueue>(ex, blocking_pool, store)),
      state_store(config.state_dir),
      blocking(blocking_pool),
      slots(ex, config.concurrency),
      admission(ex, admission_slots(config)) {}

std::string redact(std::string message, const std::string& secret) {
    if (secret.empty()) return message;
    for (auto at = message.find(secret); at != std::string::npos; at = message.find(secret, at)) {
        message.replace(at, secret.size(), "[redacted]");
    }
    return message;
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

void log_change(const Instance& inst, const std::filesystem::path& path, const Installed& done,
                const CertBundle& installed, const Composition& c) {
    LogFields fields{{"name", inst.name},
                     {"org", inst.org},
                     {"id", inst.id},
                     {"path", path.string()},
                     {"fingerprint", installed.fingerprints()},
                     {"not_after", format_time(installed.newest().not_after)}};
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

std::string server_of(const Instance& inst) { return *inst.host + ":" + std::to_string(inst.port); }

asio::awaitable<Outcome<PresentedChain>> probe(std::shared_ptr<Services> s, const Instance& inst) {
    return probe_server(s->executor, s->resolver, *inst.host, inst.port,
                        {s->config.connect_timeout, s->config.timeout});
}

// The bundle validated before for these exact bytes, when one of its
// certificates is still valid NOW.
std::optional<CertBundle> cached_bundle(const Services& s, const std::string& pem, SysTime now) {
    const CertBundle* hit = s.validated.find(pem);
    if (hit == nullptr) return std::nullopt;
    if (std::none_of(hit->certs.begin(), hit->certs.end(), [&](const CertInfo& c) {
            return c.not_before <= now && now <= c.not_after;
        })) {
        return std::nullopt;
    }
    return *hit;
}

// extract_ca(), skipped for a 200 body whose CA validated before: on a
// fleet's warm pass every instance of a data plane is sent the same bytes,
// and Boost.JSON's pass over their escaped string was 7% of the pass.
Outcome<std::string> extract_ca_with_cache(const Services& s, unsigned status,
                                           const std::string& body) {
    if (status == 200) {
        if (const std::string* pem = s.extracted.find(body)) return *pem;
    }
    return extract_ca(status, body);
}

struct OnDisk {
    std::optional<std::string> file;
    FileMeta meta;  // the file's mode, owner and group
    std::optional<std::string> state;
};

}  // namespace

asio::awaitable<RefreshResult> refresh(std::shared_ptr<Services> s, Instance inst) {
    RefreshResult result;
    const auto add_warning = [&result](const std::string& w) {
        result.warning += (result.warning.empty() ? "" : "; ") + w;
    };
    const auto target = inst.url_path();
    // Every error names the request; built only for an error.
    const auto where = [&] { return "GET " + target + " on " + inst.api.origin() + ": "; };
    auto token = s->token.get();
    if (!token) {
        result.error = where() + token.error();
        co_return result;
    }
    const auto now = sys_now();
    result.token_expiry = s->token.expiry();
    {  // about the one token all instances share: logged once, not per instance
        std::string warning = s->token.exposure();
        if (result.token_expiry && *result.token_expiry - now < std::chrono::hours(24 * 7)) {
            warning += (warning.empty() ? "" : "; ") + std::string("the API token ") +
                       (*result.token_expiry <= now ? "expired " : "expires ") +
                       format_time(*result.token_expiry) + ": rotate it before refreshes fail";
        }
        if (warning.empty()) {
            s->token_warnings.on_success();
        } else if (s->token_warnings.on_failure(warning, std::chrono::steady_clock::now()) !=
                   FailureLog::Verdict::quiet) {
            spdlog::warn("{}", warning);
        }
    }

    std::optional<Outcome<HttpResponse>> response;
    {
        co_await s->slots.async_send(boost::system::error_code{}, asio::use_awaitable);
        SlotGuard slot(s->slots);
        response = co_await s->client->get(inst.api, target, token.value());
    }
    if (!*response) {
        result.error = redact(where() + response->error(), token.value());
        if (response->unreachable()) {
            result.unreachable = RefreshResult::Unreachable{
                inst.api.origin(), redact(response->error(), token.value())};
        }
        co_return result;
    }
    const auto& answer = response->value();
    result.retry_after = answer.retry_after;
    result.http_status = answer.status;
    if (answer.status >= 300 && answer.status < 400) {
        result.error = where() + "HTTP " + std::to_string(answer.status) + ": redirect to '" +
                       printable_snippet(answer.location) +
                       "' not followed (the token only goes to the configured host)";
        co_return result;
    }
    auto pem = extract_ca_with_cache(*s, answer.status, answer.body);
    if (!pem) {
        result.error = redact(where() + pem.error(), token.value());
        if (answer.status == 401) s->token.recheck();  // a token rotated this second is used next
        if (answer.status == 401 && result.token_expiry && *result.token_expiry <= now) {
            result.error += " (the API token expired " + format_time(*result.token_expiry) + ")";
        }
        co_return result;
    }
    // Parsing X.509 costs ~1.6M instructions per certificate in OpenSSL 3.0.
    // A CA validated before is looked up here, without a coroutine frame.
    std::optional<Outcome<CertBundle>> checked;
    if (auto hit = cached_bundle(*s, pem.value(), now)) {
        checked = std::move(*hit);
    } else {
        checked = co_await validate_with_cache(s, pem.value(), now);
    }
    auto& served = *checked;
    if (!served) {
        result.error = where() + "invalid CA: " + served.error();
        co_return result;
    }
    s->extracted.put(answer.body, pem.value(), pem.value().size());

    // What the file and the rotation state hold now. A file small enough is
    // read on the loop: ~5 us from the page cache, where a trip through the
    // pool costs the loop more (two thread wake-ups); a warm pass of 5,000
    // instances runs ~15% faster. Anything bigger is read on the pool.
    const auto file_name = inst.name + ".crt";
    const auto state_name = inst.name + ".json";
    const bool read_state =
        !s->states.contains(inst.name) && (!s->state_files || s->state_files->contains(state_name));
    // Nullopt: the file is bigger than LIMIT, and nothing was read.
    auto read = [s, file_name, state_name,
                 read_state](std::size_t limit) -> std::optional<Outcome<OnDisk>> {
        FileMeta meta;
        auto file = s->store.read_up_to(file_name, limit, &meta);
        if (!file) return std::nullopt;
        if (!*file) return Outcome<OnDisk>(fail(file->error()));
        OnDisk d{std::move(file->value()), meta, std::nullopt};
        if (read_state) {
            if (auto st = s->state_store.read(state_name); st) d.state = std::move(st.value());
        }
        return Outcome<OnDisk>(std::move(d));
    };
    auto was_read = read(CertStore::loop_read_limit);
    if (!was_read) {
        auto read_all = [read] { return *read(SIZE_MAX); };
        was_read = co_await run_blocking(s->blocking, std::move(read_all));
    }
    auto& disk = *was_read;
    if (!disk) {
        result.error = "install " + inst.name + ": " + disk.error();
        co_return result;
    }
    // One lookup for the whole refresh: std::map entries stay put, and this
    // instance's entry is only ever touched by its own loop.
    auto [entry, fresh] = s->states.try_emplace(inst.name);
    RotationState& state = entry->second;
    if (fresh) {  // first refresh of this instance: start from what is on disk
        if (disk->state) {
            if (auto st = parse_state(*disk->state)) {
                state = std::move(st.value());
            } else {
                spdlog::warn("{}: ignoring unreadable rotation state: {}", inst.name, st.error());
            }
        } else if (disk->file) {
            state.served = *disk->file;  // adopt a file from before rootcertd managed it
        }
    }
    const auto& current = disk->file;
    auto comp = compose(state, served.value(), inst.keep_previous, now);
    std::string final_pem = comp.pem;

    // Consult the live server before changing what clients trust.
    std::optional<PresentedChain> chain;
    if (inst.host && current && final_pem != *current) {
        auto probed = co_await probe(s, inst);
        if (!probed) {
            add_warning("live check before install: " + probed.error());
        } else {
            chain = std::move(probed.value());
            const auto next = verify_chain(*chain, final_pem, *inst.host);
            if (!next.ok && !next.host_mismatch && verify_chain(*chain, *current, *inst.host).ok) {
                final_pem = union_of(final_pem, *current);
                spdlog::warn(
                    "{}: server {} does not yet present a certificate under the new CA; "
                    "installing the new CA together with the current one",
                    inst.name, server_of(inst));
            }
        }
    }

    // What was served is usually what is installed: it moves, not copies.
    const CertInfo newest = served->newest();
    auto installed_bundle = final_pem == served->pem ? std::move(served) : parse_bundle(final_pem);
    // Rotation state is kept on disk only while a previous CA is kept (else
    // the file itself says what was served), and saved before the file: a
    // crash in between can only lengthen an overlap, never lose one.
    const bool keeps = !comp.state.kept.empty();
    const bool kept = !state.kept.empty();
    if ((keeps || kept) && !(comp.state == state)) {
        auto save = [s, state_name, keeps,
                     text =
                         keeps ? serialize_state(comp.state) : std::string()]() -> Outcome<bool> {
            if (!keeps) return s->state_store.remove(state_name);
            auto saved = s->state_store.install(state_name, text, FileOwnership{0600, {}, {}});
            if (!saved) return fail(saved.error());
            return true;
        };
        auto saved = co_await run_blocking(s->blocking, std::move(save));
        if (!saved) {
            result.error = "save rotation state of " + inst.name + ": " + saved.error();
            co_return result;
        }
        if (s->state_files) {
            if (keeps) {
                s->state_files->insert(state_name);
            } else {
                s->state_files->erase(state_name);
            }
        }
    }
    // The file read above already holds these bytes and ownership: nothing to
    // write, and no second trip to the blocking pool (the common case).
    // Otherwise, group commit: this install shares one flush with concurrent ones.
    Outcome<Installed> installed = Installed{};
    if (!(current && *current == final_pem && disk->meta.matches(inst.file))) {
        InstallJob job{file_name, final_pem, inst.file};  // a named local: see run_blocking
        installed = co_await s->installs->install(std::move(job));
    }
    if (!installed) {
        result.error = "install " + inst.name + ": " + installed.error();
        co_return result;
    }
    if (s->single_pass) {
        s->states.erase(entry);  // `state` dangles from here
    } else {
        state = std::move(comp.state);
    }
    if (installed->change != Change::unchanged) {
        log_change(inst, s->config.cert_path(inst), installed.value(), installed_bundle.value(),
                   comp);
    }
    // The file holds this bundle from here on, whatever the live check says
    // next: a change is a change (its hook runs, it is counted).
    result.change = installed->change;
    result.bundle = std::move(installed_bundle.value());
    if (newest.not_after - now < s->config.expiry_warning) {
        add_warning("newest CA '" + newest.subject + "' expires " + format_time(newest.not_after) +
                    ", within the expiry_warning window");
    }

    // Would a verify-full client reach the server with what is installed now?
    if (inst.host) {
        if (!chain) {
            auto probed = co_await probe(s, inst);
            if (probed) chain = std::move(probed.value());
        }
        if (chain) {
            const auto verdict = verify_chain(*chain, final_pem, *inst.host);
            result.live_ok = verdict.ok;
            result.server_not_after = chain->leaf_not_after;
            if (!verdict.ok && !verdict.host_mismatch) {
                result.error = "server " + server_of(inst) +
                               " does not verify against the installed file (" + verdict.reason +
                               "); the API has not served its new CA yet";
                co_return result;
            }
            if (verdict.host_mismatch) add_warning(verdict.reason);
        }
    }
    result.ok = true;
    co_return result;
}

struct Services::Validation {
    explicit Validation(asio::any_io_executor ex)
        : done(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer done;  // cancelled when `result` is set
    std::optional<Outcome<CertBundle>> result;
};

asio::awaitable<Outcome<CertBundle>> validate_with_cache(std::shared_ptr<Services> s,
                                                         std::string pem, SysTime now) {
    if (auto hit = cached_bundle(*s, pem, now)) co_return std::move(*hit);
    if (const auto it = s->validating.find(pem); it != s->validating.end()) {
        const auto running = it->second;
        co_await running->done.async_wait(asio::as_tuple(asio::use_awaitable));
        if (running->result) co_return *running->result;
        co_return fail("stopped while the CA was being validated");
    }
    auto running = std::make_shared<Services::Validation>(co_await asio::this_coro::executor);
    s->validating.emplace(pem, running);
    auto check = [text = pem, now] { return validate_bundle(text, now); };
    auto fresh = co_await run_blocking(s->blocking, std::move(check));
    s->validating.erase(pem);
    running->result = fresh;
    running->done.cancel();
    if (fresh) s->validated.put(pem, fresh.value(), 2 * fresh.value().pem.size());
    co_return fresh;
}

asio::awaitable<CheckResult> check_live(std::shared_ptr<Services> s, Instance inst) {
    CheckResult result;
    auto probed = co_await probe(s, inst);
    if (!probed) {
        result.problem = probed.error();
        co_return result;
    }
    auto read = [s, file_name = inst.name + ".crt"] { return s->store.read(file_name); };
    auto file = co_await run_blocking(s->blocking, std::move(read));
    if (!file || !file->has_value()) {
        result.problem = "no installed file to check yet";
        co_return result;
    }
    const auto verdict = verify_chain(probed.value(), *file.value(), *inst.host);
    result.live_ok = verdict.ok;
    result.server_not_after = probed->leaf_not_after;
    if (verdict.ok) co_return result;
    result.problem = verdict.reason;
    if (!verdict.host_mismatch) {
        result.problem = "server " + server_of(inst) + " no longer verifies against " +
                         s->config.cert_path(inst).string() + " (" + verdict.reason +
                         "); refreshing from the API now";
        result.refresh_now = true;
    }
    co_return result;
}

}  // namespace rootcertd
