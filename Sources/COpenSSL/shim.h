// Shim header: the system headers this module exposes to Swift, plus inline wrappers for
// the OpenSSL macros Swift cannot import (function-like macros over SSL_CTX_ctrl, and the
// 64-bit SSL_OP_* option bits).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/hmac.h>

static inline long cs_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long cs_ssl_ctx_set_max_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_max_proto_version(ctx, version);
}
static inline long cs_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
static inline long cs_ssl_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline long cs_ssl_ctx_set_dh_auto(SSL_CTX *ctx, int on) {
    return SSL_CTX_set_dh_auto(ctx, on);
}
static inline long cs_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

/* Option bits (SSL_OP_BIT(n) expressions in OpenSSL 3). */
static inline uint64_t cs_ssl_op_no_sslv2_v3(void) { return SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3; }
static inline uint64_t cs_ssl_op_no_compression(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t cs_ssl_op_no_resumption_on_renegotiation(void) {
    return SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION;
}
static inline uint64_t cs_ssl_op_no_renegotiation(void) {
#ifdef SSL_OP_NO_RENEGOTIATION
    return SSL_OP_NO_RENEGOTIATION;
#else
    return 0;
#endif
}
static inline uint64_t cs_ssl_op_allow_client_renegotiation(void) {
#ifdef SSL_OP_ALLOW_CLIENT_RENEGOTIATION
    return SSL_OP_ALLOW_CLIENT_RENEGOTIATION;
#else
    return 0;
#endif
}
static inline uint64_t cs_ssl_op_ignore_unexpected_eof(void) {
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    return SSL_OP_IGNORE_UNEXPECTED_EOF;
#else
    return 0;
#endif
}
