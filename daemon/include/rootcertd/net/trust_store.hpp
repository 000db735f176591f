// The platform's trusted CAs for verifying the API, loaded as OpenSSL's defaults are.
#pragma once

#include <openssl/ssl.h>

namespace rootcertd {

// Makes CTX trust the platform's default CA directory and file, honouring
// SSL_CERT_DIR and SSL_CERT_FILE as OpenSSL does. The directory is searched
// by hash per certificate, and the file (a bundle of ~150 CAs, ~60 ms to
// parse in OpenSSL 3.0) is read only when an issuer was not found there:
// on systems and images without hash links, that is at the first
// handshake. SSL_CERT_FILE, an operator's explicit choice, is read at once.
void use_system_trust(SSL_CTX* ctx);

}  // namespace rootcertd
