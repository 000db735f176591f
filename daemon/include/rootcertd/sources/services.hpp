// What every refresh and list shares: the configuration, the HTTPS clients,
// credentials, validators, the stores and the caches, rebuilt when a reload
// changes global settings.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "rootcertd/core/logging.hpp"
#include "rootcertd/core/model.hpp"
#include "rootcertd/core/semaphore.hpp"
#include "rootcertd/net/api_client.hpp"
#include "rootcertd/net/proxy.hpp"
#include "rootcertd/pki/cert_bundle.hpp"
#include "rootcertd/pki/rotation.hpp"
#include "rootcertd/sources/credentials.hpp"
#include "rootcertd/sources/source.hpp"
#include "rootcertd/sources/token_source.hpp"
#include "rootcertd/store/cert_store.hpp"
#include "rootcertd/store/install_queue.hpp"

namespace rootcertd {

// What was derived from some exact bytes (a response body, a PEM bundle),
// kept for when the same bytes come again. An ordered map: a lookup is a few
// memcmp()s, cheaper than hashing the bytes (bench/RESULTS.md). Bounded in entries and bytes:
// reaching either starts it over, since the working set is a few CAs. Event loop only.
template <class V>
class BytesCache {
  public:
    static constexpr std::size_t max_entries = 4096;
    static constexpr std::size_t max_bytes = 8 << 20;

    const V* find(std::string_view key) const {
        const auto it = map_.find(key);
        return it == map_.end() ? nullptr : &it->second;
    }
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    std::size_t size() const { return map_.size(); }
    // VALUE_BYTES: roughly what VALUE holds, counted against max_bytes.
    // Copies KEY and VALUE only when KEY is new.
    void put(std::string_view key, const V& value, std::size_t value_bytes) {
        if (contains(key)) return;
        if (map_.size() >= max_entries || bytes_ > max_bytes) {
            map_.clear();
            bytes_ = 0;
        }
        bytes_ += key.size() + value_bytes;
        map_.emplace(std::string(key), value);
    }

  private:
    std::map<std::string, V, std::less<>> map_;
    std::size_t bytes_ = 0;
};

// How many refreshes may be under way at once: 4 x concurrency, at least 64.
std::size_t admission_slots(const Config& config);

// What was derived from bytes seen before, so that the same bytes are not
// parsed again: instances of one data plane are all served the same CA.
struct ContentCaches {
    // Bundles validated before, keyed by the exact bytes served (X.509
    // parsing is costly in OpenSSL 3).
    BytesCache<CertBundle> validated;
    // The CA text of 200 bodies whose CA validated, keyed by the whole body,
    // with how it was read (the same body read another way is another CA).
    struct Extracted {
        Reading reading;
        std::string pem;
    };
    BytesCache<Extracted> extracted;
    // Validations under way, by the same key: refreshes that receive the same
    // new bytes meanwhile wait for that one result instead of parsing again
    // (a cold start of a fleet would otherwise parse one CA per admission slot).
    struct Validation;
    std::map<std::string, std::shared_ptr<Validation>, std::less<>> validating;
};

// Makes the HTTPS client a Services uses; tests pass one that plays the API.
using ClientFactory = std::function<Outcome<std::shared_ptr<HttpClient>>(
    boost::asio::any_io_executor, const ClientOptions&)>;

// What requests share: the HTTPS clients (one per extra trust file), the
// proxy, secrets, each instance's validators and the request slots. Used
// by fetching a CA and listing a discover entry.
struct Fetcher {
    Fetcher(boost::asio::any_io_executor ex, const Config& config,
            std::shared_ptr<Resolver> resolver, ProxyRoute route,
            const ClientFactory& client_factory);

    // The shared client and one per extra trust file CONFIG names (sources'
    // and discover entries' ca_file), those not made yet: a file that cannot
    // load fails here, before any request, naming its key and path. A reload
    // that keeps the global settings calls it with its new config.
    Outcome<void> make_clients(const Config& config);

    ProxyRoute proxy;                         // api.proxy or the environment's
    std::shared_ptr<TokenSource> proxy_auth;  // api.proxy_auth_file, when set
    Credentials credentials;
    // The validators of each instance's last installed answer, for a
    // conditional request next time.
    std::map<std::string, Validators, std::less<>> validators;
    Semaphore requests_in_flight;  // API requests: at most config.concurrency
    // Warnings about the token (its file's mode, its expiry) are the same for
    // every instance: logged once, and again hourly while they last.
    FailureLog token_warnings;

    // The client for SOURCE's origin: the shared one, or the one that also
    // trusts the source's own ca_file (made by make_clients).
    const std::shared_ptr<HttpClient>& client_for(const Source& source) const {
        return client_for(source.ca_file);
    }
    const std::shared_ptr<HttpClient>& client_for(
        const std::optional<std::filesystem::path>& ca) const;
    // Aborts every request in flight; later ones fail.
    void close();

  private:
    ClientOptions options(const std::optional<std::filesystem::path>& extra_ca) const;

    boost::asio::any_io_executor executor_;
    ClientOptions base_;  // the config's trust, timeouts, resolver and proxy
    ClientFactory make_client_;
    std::shared_ptr<HttpClient> client_;  // trusts the system store and api.ca_file
    std::map<std::filesystem::path, std::shared_ptr<HttpClient>> clients_by_ca_;
};

// What is on disk and what refreshes remember of it: the cert store and its
// install queue, the rotation state files and the states in memory.
struct FileState {
    FileState(boost::asio::any_io_executor ex, boost::asio::thread_pool& blocking_pool,
              const Config& config);

    CertStore store;
    std::shared_ptr<InstallQueue> installs;  // group commit into store
    CertStore state_store;                   // rotation state, one JSON file per instance
    // The files state_store holds, when it was listed: an instance without one
    // (most: a state is only kept during an overlap) is not looked for. One
    // written meanwhile by a Services that a reload replaced is missed: that
    // instance adopts its file, which only lengthens an overlap.
    std::optional<std::set<std::string, std::less<>>> state_files;
    std::map<std::string, RotationState> states;  // cache; event loop only

    // What INSTANCE's source served last time (its rotation state), if known.
    const std::string* served_last(const std::string& instance) const;
};

// What every refresh shares, by owner; rebuilt when a reload changes global
// settings.
struct Services {
    // Use make_services(): what can fail is made there first.
    Services(boost::asio::any_io_executor ex, Config config,
             boost::asio::thread_pool& blocking_pool, std::shared_ptr<Resolver> resolver,
             ProxyRoute route, const ClientFactory& client_factory);

    Config config;
    boost::asio::any_io_executor executor;  // the event loop
    std::shared_ptr<Resolver> resolver;     // for the API and the live checks
    Fetcher fetch;
    FileState files;
    ContentCaches seen;
    boost::asio::thread_pool& blocking;  // fsync and file reads run here
    // Refreshes under way, taken by whoever starts one (the scheduler's loop,
    // --once) before the refresh's frames exist: it bounds memory, and up to
    // 4 x concurrency installs can gather into one durable batch.
    Semaphore refreshes_admitted;

    // Aborts every request in flight; later ones fail.
    void close_clients() { fetch.close(); }
    // Drops what refreshes keep of INSTANCE for its next one (the rotation
    // state, validators): --once has no next one, and a pass of 5,000 would
    // hold them all until exit.
    void forget(const std::string& instance) {
        files.states.erase(instance);
        fetch.validators.erase(instance);
    }
};

// Services for CONFIG, or why they cannot start: the proxy settings (api.proxy
// or the environment's), the DNS resolver, a trust file that cannot load.
Outcome<std::shared_ptr<Services>> make_services(
    boost::asio::any_io_executor ex, Config config, boost::asio::thread_pool& blocking_pool,
    const ClientFactory& client_factory = make_https_client);

}  // namespace rootcertd
