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

ClientOptions client_options(const Services& s,
                             const std::optional<std::filesystem::path>& extra_ca = {}) {
    ClientOptions options;
    options.resolver = s.resolver;
    options.ca_file = s.config.ca_file;
    options.extra_ca_file = extra_ca;
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

Services::Services(asio::any_io_executor ex, Config cfg, asio::thread_pool& blocking_pool,
                   const ClientFactory& client_factory)
    : config(std::move(cfg)),
      proxy(proxy_route(config)),
      proxy_auth(config.proxy_auth_file ? std::make_shared<TokenSource>(TokenSource::from_file(
                                              *config.proxy_auth_file, "proxy auth file"))
                                        : nullptr),
      executor(ex),
      resolver(make_resolver(ex)),
      make_client(client_factory),
      client(client_factory(ex, client_options(*this))),
      credentials(config, ex),
      store(config.cert_dir),
      installs(std::make_shared<InstallQueue>(ex, blocking_pool, store)),
      state_store(config.state_dir),
      blocking(blocking_pool),
      requests_in_flight(ex, config.concurrency),
      refreshes_admitted(ex, admission_slots(config)) {}

const std::shared_ptr<HttpClient>& Services::client_for(
    const std::optional<std::filesystem::path>& ca) {
    if (!ca) return client;
    auto& c = clients_by_ca[*ca];
    if (!c) c = make_client(executor, client_options(*this, ca));
    return c;
}

const std::string* Services::served_last(const std::string& instance) const {
    const auto it = states.find(instance);
    return it == states.end() || it->second.served.empty() ? nullptr : &it->second.served;
}

void Services::close_clients() {
    client->close();
    for (auto& [_, c] : clients_by_ca) c->close();
}

}  // namespace rootcertd
