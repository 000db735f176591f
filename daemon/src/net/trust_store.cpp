#include "rootcertd/net/trust_store.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <cstdlib>
#include <memory>

namespace rootcertd {

namespace {

// The method data of a lookup whose file has been read.
char loaded_marker;

// X509_LOOKUP get_by_subject: consulted after the hashed directory found no
// certificate named NAME. The first call reads the default file into the
// store; every call answers from what the store holds.
int by_subject_from_file(X509_LOOKUP* lookup, X509_LOOKUP_TYPE type, const X509_NAME* name,
                         X509_OBJECT* ret) {
    if (type != X509_LU_X509) return 0;
    X509_STORE* store = X509_LOOKUP_get_store(lookup);
    if (X509_LOOKUP_get_method_data(lookup) != &loaded_marker) {
        X509_LOOKUP_set_method_data(lookup, &loaded_marker);
        const char* file = X509_get_default_cert_file();
        std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_file(file, "r"), BIO_free);
        while (in) {
            std::unique_ptr<X509, decltype(&X509_free)> x(
                PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr), X509_free);
            if (!x) break;
            X509_STORE_add_cert(store, x.get());  // a duplicate is refused, harmlessly
        }
        ERR_clear_error();
    }
    // The store's own objects were searched before this lookup was asked, so
    // a certificate found here came from the file. Asio's loop is the only
    // thread verifying: no lock is needed to read the list.
    X509_OBJECT* found = X509_OBJECT_retrieve_by_subject(
        X509_STORE_get0_objects(store), X509_LU_X509, const_cast<X509_NAME*>(name));
    if (found == nullptr) return 0;
    // As OpenSSL's own lookups do, RET borrows the store's reference (the
    // caller takes its own): set1's extra one is dropped, or it would leak.
    X509* cert = X509_OBJECT_get0_X509(found);
    if (!X509_OBJECT_set1_X509(ret, cert)) return 0;
    X509_free(cert);
    return 1;
}

const X509_LOOKUP_METHOD* default_file_method() {
    static X509_LOOKUP_METHOD* method = [] {
        X509_LOOKUP_METHOD* m = X509_LOOKUP_meth_new("rootcertd default CA file, on demand");
        X509_LOOKUP_meth_set_get_by_subject(m, by_subject_from_file);
        return m;
    }();
    return method;
}

}  // namespace

void use_system_trust(SSL_CTX* ctx) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    const char* dir = std::getenv(X509_get_default_cert_dir_env());
    SSL_CTX_load_verify_dir(ctx, dir != nullptr ? dir : X509_get_default_cert_dir());
    if (const char* file = std::getenv(X509_get_default_cert_file_env())) {
        SSL_CTX_load_verify_file(ctx, file);
    } else {
        X509_STORE_add_lookup(store, const_cast<X509_LOOKUP_METHOD*>(default_file_method()));
    }
    ERR_clear_error();
}

}  // namespace rootcertd
