#include "rootcertd/net/resolver.hpp"

#include <ares.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

namespace rootcertd {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Endpoints = std::vector<tcp::endpoint>;

namespace {

// One lookup under way. The timer is its deadline, and is cancelled when
// the answer arrives first.
struct Lookup {
    explicit Lookup(asio::any_io_executor ex) : done(std::move(ex)) {}
    asio::steady_timer done;
    std::optional<Outcome<Endpoints>> result;
    std::uint16_t port = 0;
};

// A socket c-ares opened, watched for what c-ares wants to do with it.
struct Watch {
    Watch(asio::any_io_executor ex, int fd) : descriptor(std::move(ex), fd) {}
    asio::posix::stream_descriptor descriptor;  // not its owner: c-ares closes the fd
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;  // a wait is under way
    bool open = true;                       // c-ares still uses the fd
};

class AresResolver final : public Resolver, public std::enable_shared_from_this<AresResolver> {
  public:
    explicit AresResolver(asio::any_io_executor ex) : ex_(std::move(ex)), timer_(ex_) {
        static std::once_flag once;
        std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
        resolv_conf_ = stamp_of(resolv_conf_path);
    }
    friend Outcome<std::shared_ptr<Resolver>> rootcertd::make_resolver(asio::any_io_executor);
    AresResolver(const AresResolver&) = delete;
    AresResolver& operator=(const AresResolver&) = delete;
    ~AresResolver() override { close_channel(); }

    asio::awaitable<Outcome<Endpoints>> resolve(std::string host, std::uint16_t port,
                                                Duration timeout) override {
        boost::system::error_code ec;
        const auto literal = asio::ip::make_address(host, ec);
        if (!ec) co_return Endpoints{tcp::endpoint(literal, port)};
        if (closed_) co_return fail("shutting down");
        follow_resolv_conf();
        if (channel_ == nullptr) co_return fail(unusable_);
        auto self = shared_from_this();  // callbacks find this resolver alive
        auto lookup = std::make_shared<Lookup>(ex_);
        lookup->port = port;
        lookup->done.expires_after(timeout);
        ares_addrinfo_hints hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        // Owned by the callback, which c-ares calls exactly once (perhaps
        // before ares_getaddrinfo returns, for /etc/hosts).
        ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &AresResolver::on_answer,
                         new std::shared_ptr<Lookup>(lookup));
        arm_timer();
        if (!lookup->result) {
            co_await lookup->done.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        // Past its deadline the query goes on inside c-ares, bounded by its
        // own timeouts; its answer then goes to a Lookup nobody waits for.
        if (!lookup->result) co_return fail("timed out");
        co_return std::move(*lookup->result);
    }

    void close() override {
        closed_ = true;
        if (channel_ != nullptr) ares_cancel(channel_);
    }

  private:
    // c-ares reads resolv.conf when a channel opens (it reads /etc/hosts per
    // lookup); getaddrinfo() follows a changed resolv.conf, and so must a
    // daemon that runs for months. Checked at most every few seconds.
    static constexpr const char* resolv_conf_path = "/etc/resolv.conf";
    struct Stamp {
        ino_t ino = 0;
        timespec mtime{};
        bool operator==(const Stamp& o) const {
            return ino == o.ino && mtime.tv_sec == o.mtime.tv_sec &&
                   mtime.tv_nsec == o.mtime.tv_nsec;
        }
    };
    static Stamp stamp_of(const char* path) {
        struct stat st {};
        if (::stat(path, &st) != 0) return {};
        return {st.st_ino, st.st_mtim};
    }

    // On failure there is no channel: lookups fail with its reason until a
    // changed resolv.conf opens one.
    Outcome<void> open_channel() {
        ares_options options{};
        options.sock_state_cb = &AresResolver::on_socket_state;
        options.sock_state_cb_data = this;
        if (const int rc = ares_init_options(&channel_, &options, ARES_OPT_SOCK_STATE_CB);
            rc != ARES_SUCCESS) {
            channel_ = nullptr;
            unusable_ = std::string("DNS resolver: ") + ares_strerror(rc);
            return fail(Stage::resolve, unusable_);
        }
        return Ok{};
    }

    void close_channel() {
        if (channel_ == nullptr) return;
        ares_destroy(channel_);  // answers what is under way, closes its sockets
        channel_ = nullptr;
        for (auto& [fd, watch] : watches_) forget(*watch);
        watches_.clear();
    }

    // A changed resolv.conf: lookups under way fail (their instances retry),
    // later ones use the new servers.
    void follow_resolv_conf() {
        const auto now = std::chrono::steady_clock::now();
        if (now < next_check_) return;
        next_check_ = now + std::chrono::seconds(5);
        const auto stamp = stamp_of(resolv_conf_path);
        if (stamp == resolv_conf_) return;
        resolv_conf_ = stamp;
        close_channel();
        (void)open_channel();  // a failure is each lookup's until the next change
    }

    static void on_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* info) {
        std::unique_ptr<std::shared_ptr<Lookup>> owner(static_cast<std::shared_ptr<Lookup>*>(arg));
        Lookup& lookup = **owner;
        if (status != ARES_SUCCESS) {
            lookup.result = fail(ares_strerror(status));
        } else {
            Endpoints found;
            for (auto* node = info->nodes; node != nullptr; node = node->ai_next) {
                if (node->ai_family == AF_INET) {
                    const auto* in = reinterpret_cast<const sockaddr_in*>(node->ai_addr);
                    asio::ip::address_v4::bytes_type bytes;
                    std::memcpy(bytes.data(), &in->sin_addr, bytes.size());
                    found.emplace_back(asio::ip::address_v4(bytes), lookup.port);
                } else if (node->ai_family == AF_INET6) {
                    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(node->ai_addr);
                    asio::ip::address_v6::bytes_type bytes;
                    std::memcpy(bytes.data(), &in6->sin6_addr, bytes.size());
                    found.emplace_back(asio::ip::address_v6(bytes, in6->sin6_scope_id),
                                       lookup.port);
                }
            }
            if (found.empty()) {
                lookup.result = fail("no address");
            } else {
                lookup.result = std::move(found);
            }
        }
        ares_freeaddrinfo(info);
        lookup.done.cancel();
    }

    // c-ares says which sockets it wants to read from or write to.
    static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
        auto* self = static_cast<AresResolver*>(data);
        const auto it = self->watches_.find(fd);
        if (!readable && !writable) {  // about to be closed by c-ares
            if (it != self->watches_.end()) {
                forget(*it->second);
                self->watches_.erase(it);
            }
            return;
        }
        auto& watch = it != self->watches_.end() ? it->second : self->watches_[fd];
        if (!watch) watch = std::make_shared<Watch>(self->ex_, fd);
        watch->want_read = readable != 0;
        watch->want_write = writable != 0;
        self->wait(watch);
    }

    static void forget(Watch& watch) {
        watch.open = false;
        watch.descriptor.release();  // cancels its waits; the fd stays c-ares's
    }

    void wait(const std::shared_ptr<Watch>& watch) {
        using W = asio::posix::stream_descriptor::wait_type;
        const auto ready = [weak = weak_from_this(), watch](bool read) {
            return [weak, watch, read](boost::system::error_code ec) {
                (read ? watch->reading : watch->writing) = false;
                const auto self = weak.lock();
                if (ec || !watch->open || !self) return;
                const int fd = watch->descriptor.native_handle();
                self->process(read ? fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : fd);
                if (watch->open) self->wait(watch);
            };
        };
        if (watch->want_read && !watch->reading) {
            watch->reading = true;
            watch->descriptor.async_wait(W::wait_read, ready(true));
        }
        if (watch->want_write && !watch->writing) {
            watch->writing = true;
            watch->descriptor.async_wait(W::wait_write, ready(false));
        }
    }

    void process(ares_socket_t read_fd, ares_socket_t write_fd) {
        if (channel_ == nullptr) return;  // closed since the socket was ready
        ares_process_fd(channel_, read_fd, write_fd);
        arm_timer();
    }

    // c-ares's own retries and timeouts happen when it is called with no
    // socket ready, at the time it asks for.
    void arm_timer() {
        timeval tv{};
        if (channel_ == nullptr || ares_timeout(channel_, nullptr, &tv) == nullptr) {
            timer_.cancel();  // nothing under way
            return;
        }
        timer_.expires_after(std::chrono::seconds(tv.tv_sec) +
                             std::chrono::microseconds(tv.tv_usec));
        timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            if (ec) return;
            if (const auto self = weak.lock()) self->process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        });
    }

    asio::any_io_executor ex_;
    ares_channel channel_ = nullptr;
    std::string unusable_;  // why there is no channel
    Stamp resolv_conf_;
    std::chrono::steady_clock::time_point next_check_{};
    asio::steady_timer timer_;
    std::unordered_map<int, std::shared_ptr<Watch>> watches_;
    bool closed_ = false;
};

}  // namespace

Outcome<std::shared_ptr<Resolver>> make_resolver(asio::any_io_executor executor) {
    auto resolver = std::make_shared<AresResolver>(std::move(executor));
    if (auto opened = resolver->open_channel(); !opened) return opened.failure();
    return std::shared_ptr<Resolver>(std::move(resolver));
}

}  // namespace rootcertd
