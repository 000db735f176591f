#include "rootcertd/pki/server_probe.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <memory>

namespace rootcertd {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

auto tuple_token() { return asio::as_tuple(asio::use_awaitable); }

template <class T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

void free_x509_stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<STACK_OF(X509), free_x509_stack>>;

X509Ptr from_der(const std::string& der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

}  // namespace

asio::awaitable<Outcome<PresentedChain>> probe_server(asio::any_io_executor ex,
                                                      std::shared_ptr<Resolver> resolver,
                                                      std::string host, std::uint16_t port,
                                                      ProbeTimeouts timeouts) {
    const auto where = host + ":" + std::to_string(port);
    auto endpoints = co_await resolver->resolve(host, port, timeouts.connect);
    if (!endpoints) co_return fail(Stage::resolve, "resolve " + host + ": " + endpoints.error());
    const Duration timeout = timeouts.whole;

    // Verification happens offline against candidate bundles, not here.
    asio::ssl::context tls(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.set_verify_mode(asio::ssl::verify_none);
    beast::ssl_stream<beast::tcp_stream> stream(ex, tls);
    auto& tcp = beast::get_lowest_layer(stream);
    tcp.expires_after(timeout);
    auto [cec, _] = co_await tcp.async_connect(endpoints.value(), tuple_token());
    if (cec) co_return fail(Stage::connect, "connect to " + where + ": " + cec.message());

    // PostgreSQL's SSLRequest: length 8, code 1234.5679; the server answers 'S' or 'N'.
    static constexpr unsigned char ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    auto [wec, w] = co_await asio::async_write(tcp, asio::buffer(ssl_request), tuple_token());
    if (wec) co_return fail(Stage::connect, "SSLRequest to " + where + ": " + wec.message());
    char answer = 0;
    auto [aec, a] = co_await asio::async_read(tcp, asio::buffer(&answer, 1), tuple_token());
    if (aec) co_return fail(Stage::connect, "SSLRequest to " + where + ": " + aec.message());
    if (answer != 'S') co_return fail(Stage::tls, where + " does not accept TLS connections");

    // Tembo routes by SNI, so send the name the client would.
    if (!is_ip_literal(host)) SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, tuple_token());
    if (hec) co_return fail(Stage::tls, "TLS handshake with " + where + ": " + hec.message());

    PresentedChain chain;
    STACK_OF(X509)* peer = SSL_get_peer_cert_chain(stream.native_handle());
    for (int i = 0; peer != nullptr && i < sk_X509_num(peer); ++i) {
        X509* x = sk_X509_value(peer, i);
        unsigned char* der = nullptr;
        const int n = i2d_X509(x, &der);
        if (n <= 0) continue;
        chain.der.emplace_back(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
        OPENSSL_free(der);
    }
    if (chain.der.empty()) co_return fail(Stage::tls, where + " presented no certificate");
    if (auto leaf = parse_bundle([&] {
            X509Ptr x = from_der(chain.der.front());
            BioPtr out(BIO_new(BIO_s_mem()));
            PEM_write_bio_X509(out.get(), x.get());
            char* data = nullptr;
            const long len = BIO_get_mem_data(out.get(), &data);
            return std::string(data, static_cast<std::size_t>(len));
        }())) {
        chain.leaf_not_after = leaf->certs.front().not_after;
        chain.leaf_subject = leaf->certs.front().subject;
    }
    // Close: no close_notify wait; PostgreSQL does not log an EOF after TLS.
    boost::system::error_code ignored;
    tcp.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    tcp.close();
    co_return chain;
}

Verdict verify_chain(const PresentedChain& chain, std::string_view bundle_pem,
                     const std::string& host) {
    Verdict v;
    if (chain.der.empty()) {
        v.failure = fail(Stage::live, "the server presented no certificate");
        return v;
    }
    StorePtr store(X509_STORE_new());
    BioPtr in(BIO_new_mem_buf(bundle_pem.data(), static_cast<int>(bundle_pem.size())));
    int anchors = 0;
    while (X509Ptr ca{PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr)}) {
        X509_STORE_add_cert(store.get(), ca.get());
        ++anchors;
    }
    ERR_clear_error();
    if (anchors == 0) {
        v.failure = fail(Stage::live, "the bundle holds no certificate");
        return v;
    }
    X509Ptr leaf = from_der(chain.der.front());
    StackPtr untrusted(sk_X509_new_null());
    for (std::size_t i = 1; i < chain.der.size(); ++i) {
        if (X509* x = from_der(chain.der[i]).release()) sk_X509_push(untrusted.get(), x);
    }
    StoreCtxPtr ctx(X509_STORE_CTX_new());
    if (!leaf || !X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get())) {
        v.failure = fail(Stage::live, "cannot parse the server's certificate");
        return v;
    }
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    if (is_ip_literal(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    }
    const bool verified = X509_verify_cert(ctx.get()) == 1;
    ERR_clear_error();
    if (verified) return v;
    const int err = X509_STORE_CTX_get_error(ctx.get());
    v.host_mismatch = err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH;
    v.failure = fail(
        Stage::live,
        v.host_mismatch ? "the server certificate ('" + chain.leaf_subject + "') does not cover '" +
                              host + "'; the CA is right. With a custom domain, connect with " +
                              "sslmode=verify-ca, which checks the CA but not the name"
                        : std::string(X509_verify_cert_error_string(err)));
    return v;
}

}  // namespace rootcertd
