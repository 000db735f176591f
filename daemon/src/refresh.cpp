#include "rootcertd/refresh.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "rootcertd/ca_response.hpp"

namespace rootcertd {

namespace asio = boost::asio;

Services::Services(asio::any_io_executor ex, Config cfg, asio::thread_pool& blocking_pool)
    : config(std::move(cfg)),
      client(make_https_client(ex, ClientOptions{.ca_file = config.ca_file,
                                                 .timeout = config.timeout,
                                                 .connect_timeout = config.connect_timeout})),
      token(config.token_file ? TokenSource::from_file(*config.token_file)
                              : TokenSource::from_env(*config.token_env)),
      store(config.cert_dir),
      blocking(blocking_pool),
      slots(ex, config.concurrency) {}

std::string redact(std::string message, const std::string& secret) {
    if (secret.empty()) return message;
    for (auto at = message.find(secret); at != std::string::npos; at = message.find(secret, at)) {
        message.replace(at, secret.size(), "[redacted]");
    }
    return message;
}

namespace {

// Runs F on the blocking pool and resumes on the caller's executor. Plain
// handlers, not a lambda coroutine: GCC 12 mishandles captures in those.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> run_blocking(asio::thread_pool& pool, F f) {
    using R = std::invoke_result_t<F&>;
    auto result = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                                void(std::optional<R>)>(
        [&pool](auto handler, F fn) {
            auto work = asio::make_work_guard(asio::get_associated_executor(handler));
            asio::post(pool, [handler = std::move(handler), fn = std::move(fn),
                              work = std::move(work)]() mutable {
                std::optional<R> r(fn());
                auto ex = work.get_executor();
                asio::post(ex, [handler = std::move(handler), r = std::move(r),
                                work = std::move(work)]() mutable {
                    std::move(handler)(std::move(r));
                });
            });
        },
        asio::use_awaitable, std::move(f));
    co_return std::move(*result);
}

// Holds one concurrency slot; frees it on every exit path, cancellation included.
class SlotGuard {
public:
    explicit SlotGuard(Services& s) : s_(s) {}
    SlotGuard(const SlotGuard&) = delete;
    SlotGuard& operator=(const SlotGuard&) = delete;
    ~SlotGuard() { s_.slots.try_receive([](boost::system::error_code) {}); }

private:
    Services& s_;
};

std::string summary(const CertBundle& b) {
    const auto& n = b.newest();
    return "sha256=" + b.fingerprints() + " subject='" + n.subject +
           "' notAfter=" + format_time(n.not_after);
}

void log_change(const Instance& inst, const std::filesystem::path& path, const Installed& done,
                const CertBundle& bundle) {
    if (done.change == Change::created) {
        spdlog::info("{}: installed CA at {}: {}", inst.name, path.string(), summary(bundle));
        return;
    }
    std::string old = "unparseable";
    if (auto previous = parse_bundle(done.previous.value_or(""))) old = previous->fingerprints();
    spdlog::info("{}: CA changed at {}: old sha256={} new {}", inst.name, path.string(), old,
                 summary(bundle));
}

}  // namespace

asio::awaitable<RefreshResult> refresh(std::shared_ptr<Services> s, Instance inst) {
    RefreshResult result;
    const auto where = "GET " + inst.url_path() + " on " + inst.api.origin() + ": ";
    auto token = s->token.get();
    if (!token) {
        result.error = where + token.error();
        co_return result;
    }

    co_await s->slots.async_send(boost::system::error_code{}, asio::use_awaitable);
    SlotGuard slot(*s);
    auto response = co_await s->client->get(inst.api, inst.url_path(), token.value());
    if (!response) {
        result.error = redact(where + response.error(), token.value());
        co_return result;
    }
    result.retry_after = response->retry_after;
    if (response->status >= 300 && response->status < 400) {
        result.error = where + "HTTP " + std::to_string(response->status) + ": redirect to '" +
                       printable_snippet(response->location) +
                       "' not followed (the token only goes to the configured host)";
        co_return result;
    }
    auto pem = extract_ca(response->status, response->body);
    if (!pem) {
        result.error = redact(where + pem.error(), token.value());
        co_return result;
    }
    const auto now = std::chrono::system_clock::now();
    auto bundle = validate_bundle(pem.value(), now);
    if (!bundle) {
        result.error = where + "invalid CA: " + bundle.error();
        co_return result;
    }

    const auto file_name = inst.name + ".crt";
    // A named local, not a temporary inside co_await: GCC 12 corrupts those.
    auto install = [s, file_name, ownership = inst.file, pem = bundle->pem] {
        return s->store.install(file_name, pem, ownership);
    };
    auto installed = co_await run_blocking(s->blocking, std::move(install));
    if (!installed) {
        result.error = "install " + inst.name + ": " + installed.error();
        co_return result;
    }
    if (installed->change != Change::unchanged) {
        log_change(inst, s->config.cert_path(inst), installed.value(), bundle.value());
    }
    const auto& newest = bundle->newest();
    if (newest.not_after - now < s->config.expiry_warning) {
        spdlog::warn("{}: newest CA '{}' expires {} (within the {}h warning window)", inst.name,
                     newest.subject, format_time(newest.not_after),
                     std::chrono::duration_cast<std::chrono::hours>(s->config.expiry_warning).count());
    }
    result.ok = true;
    result.change = installed->change;
    result.bundle = std::move(bundle.value());
    co_return result;
}

}  // namespace rootcertd
