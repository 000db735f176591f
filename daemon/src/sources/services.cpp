#include "rootcertd/sources/services.hpp"

#include "rootcertd/net/proxy.hpp"

namespace rootcertd {

namespace asio = boost::asio;

std::size_t admission_slots(const Config& config) {
    return std::max<std::size_t>(64, 4 * std::size_t{config.concurrency});
}

Fetcher::Fetcher(asio::any_io_executor ex, const Config& config, std::shared_ptr<Resolver> resolver,
                 ProxyRoute route, const ClientFactory& client_factory)
    : proxy(std::move(route)),
      proxy_auth(config.proxy_auth_file ? std::make_shared<TokenSource>(TokenSource::from_file(
                                              *config.proxy_auth_file, "proxy auth file"))
                                        : nullptr),
      credentials(config, ex),
      requests_in_flight(ex, config.concurrency),
      executor_(ex),
      make_client_(client_factory) {
    base_.resolver = std::move(resolver);
    base_.ca_file = config.ca_file;
    base_.timeout = config.timeout;
    base_.connect_timeout = config.connect_timeout;
    base_.proxy = proxy;
    if (proxy_auth) base_.proxy_credentials = [auth = proxy_auth] { return auth->get(); };
}

Outcome<void> Fetcher::make_clients(const Config& config) {
    if (!client_) {
        auto shared = make_client_(executor_, base_);
        if (!shared) return shared.failure();
        client_ = std::move(shared.value());
    }
    const auto add = [&](const std::optional<std::filesystem::path>& ca) -> Outcome<void> {
        if (!ca || clients_by_ca_.contains(*ca)) return Ok{};
        auto client = make_client_(executor_, options(ca));
        if (!client) return client.failure();
        clients_by_ca_.emplace(*ca, std::move(client.value()));
        return Ok{};
    };
    for (const auto& inst : config.instances) {
        if (auto added = add(inst.source->ca_file); !added) return added;
    }
    for (const auto& d : config.discover) {
        if (auto added = add(d.ca_file); !added) return added;
    }
    return Ok{};
}

ClientOptions Fetcher::options(const std::optional<std::filesystem::path>& extra_ca) const {
    ClientOptions options = base_;
    options.extra_ca_file = extra_ca;
    return options;
}

const std::shared_ptr<HttpClient>& Fetcher::client_for(
    const std::optional<std::filesystem::path>& ca) const {
    if (!ca) return client_;
    // Every ca_file of the config has its client. Were one missing, the
    // shared client would only fail to verify that origin: never trust more.
    const auto it = clients_by_ca_.find(*ca);
    return it == clients_by_ca_.end() ? client_ : it->second;
}

void Fetcher::close() {
    client_->close();
    for (auto& [_, c] : clients_by_ca_) c->close();
}

FileState::FileState(asio::any_io_executor ex, asio::thread_pool& blocking_pool,
                     const Config& config)
    : store(config.cert_dir),
      installs(std::make_shared<InstallQueue>(ex, blocking_pool, store)),
      state_store(config.state_dir) {}

const std::string* FileState::served_last(const std::string& instance) const {
    const auto it = states.find(instance);
    return it == states.end() || it->second.served.empty() ? nullptr : &it->second.served;
}

Outcome<std::shared_ptr<Services>> make_services(asio::any_io_executor ex, Config config,
                                                 asio::thread_pool& blocking_pool,
                                                 const ClientFactory& client_factory) {
    auto route = resolve_proxy(config.proxy, std::getenv);
    if (!route) return route.failure();
    auto resolver = make_resolver(ex);
    if (!resolver) return resolver.failure();
    auto s = std::make_shared<Services>(ex, std::move(config), blocking_pool,
                                        std::move(resolver.value()), std::move(route.value()),
                                        client_factory);
    if (auto made = s->fetch.make_clients(s->config); !made) return made.failure();
    return s;
}

Services::Services(asio::any_io_executor ex, Config cfg, asio::thread_pool& blocking_pool,
                   std::shared_ptr<Resolver> shared_resolver, ProxyRoute route,
                   const ClientFactory& client_factory)
    : config(std::move(cfg)),
      executor(ex),
      resolver(std::move(shared_resolver)),
      fetch(ex, config, resolver, std::move(route), client_factory),
      files(ex, blocking_pool, config),
      blocking(blocking_pool),
      refreshes_admitted(ex, admission_slots(config)) {}

}  // namespace rootcertd
