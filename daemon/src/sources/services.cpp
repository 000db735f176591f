#include "rootcertd/sources/services.hpp"

#include "rootcertd/net/proxy.hpp"

namespace rootcertd {

namespace asio = boost::asio;

namespace {

ProxyRoute proxy_route(const Config& config) {
    auto route = resolve_proxy(config.proxy, std::getenv);
    if (!route) throw std::runtime_error(route.error());
    return std::move(route.value());
}

}  // namespace

std::size_t admission_slots(const Config& config) {
    return std::max<std::size_t>(64, 4 * std::size_t{config.concurrency});
}

Fetcher::Fetcher(asio::any_io_executor ex, const Config& config, std::shared_ptr<Resolver> resolver,
                 const ClientFactory& client_factory)
    : proxy(proxy_route(config)),
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
    client_ = make_client_(executor_, base_);
}

ClientOptions Fetcher::options(const std::optional<std::filesystem::path>& extra_ca) const {
    ClientOptions options = base_;
    options.extra_ca_file = extra_ca;
    return options;
}

const std::shared_ptr<HttpClient>& Fetcher::client_for(
    const std::optional<std::filesystem::path>& ca) {
    if (!ca) return client_;
    auto& c = clients_by_ca_[*ca];
    if (!c) c = make_client_(executor_, options(ca));
    return c;
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

Services::Services(asio::any_io_executor ex, Config cfg, asio::thread_pool& blocking_pool,
                   const ClientFactory& client_factory)
    : config(std::move(cfg)),
      executor(ex),
      resolver(make_resolver(ex)),
      fetch(ex, config, resolver, client_factory),
      files(ex, blocking_pool, config),
      blocking(blocking_pool),
      refreshes_admitted(ex, admission_slots(config)) {}

}  // namespace rootcertd
