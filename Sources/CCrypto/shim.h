/* CCrypto: OpenSSL libcrypto (apt: libssl-dev), the only source of ciphers and MACs. */
#ifndef ENCD_CCRYPTO_H
#define ENCD_CCRYPTO_H
/* The low-level digest functions (SHA256_Init...) are deprecated in OpenSSL 3.0 but
 * are the only way to restore an HMAC state without an allocation there (the EVP
 * digest and MAC layers allocate a provider context on every init and copy); see
 * Sources/Crypto/Authenticator.swift. Importing them without the attribute keeps
 * the build free of deprecation warnings. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/md5.h>
#include <openssl/ripemd.h>
#include <openssl/sha.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/bn.h>
#include <openssl/dh.h>
/* encd-iked's certificates (RFC 7296 §3.6-§3.8, RFC 7427). */
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include <openssl/pem.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
/* Composite macros Swift does not import. */
static inline int ccrypto_select_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int ccrypto_select_keypair(void) { return EVP_PKEY_KEYPAIR; }
/* Parameter names with static storage: OSSL_PARAM_BLD keeps the key pointer until
 * OSSL_PARAM_BLD_to_param, so a temporary C string from Swift would dangle. */
static inline const char *ccrypto_param_group_name(void) { return OSSL_PKEY_PARAM_GROUP_NAME; }
static inline const char *ccrypto_param_pub_key(void) { return OSSL_PKEY_PARAM_PUB_KEY; }
static inline const char *ccrypto_param_priv_key(void) { return OSSL_PKEY_PARAM_PRIV_KEY; }
/* Stacks of certificates are macros and inline functions with ossl_check_ casts. */
static inline STACK_OF(X509) *ccrypto_x509_stack_new(void) { return sk_X509_new_null(); }
static inline int ccrypto_x509_stack_push(STACK_OF(X509) *s, X509 *x) { return sk_X509_push(s, x); }
static inline void ccrypto_x509_stack_free(STACK_OF(X509) *s) { sk_X509_free(s); }
/* RFC 2253 escaping, attributes in the certificate's order, ", " between them
 * ("O=encd, CN=gw1", as strongSwan shows and reads a DN). */
static inline unsigned long ccrypto_xn_flags(void) { return (XN_FLAG_RFC2253 & ~(XN_FLAG_DN_REV | XN_FLAG_SEP_MASK)) | XN_FLAG_SEP_CPLUS_SPC; }
static inline long ccrypto_bio_mem_data(BIO *b, char **p) { return BIO_get_mem_data(b, p); }
/* The verification error of a chain, or 0; a missing CRL for a CA that has none on
 * file is not one (CRLs are checked where the administrator installed them). */
static inline int ccrypto_verify_cb(int ok, X509_STORE_CTX *ctx) {
    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNABLE_TO_GET_CRL) return 1;
    return ok;
}
static inline void ccrypto_store_use_crls(X509_STORE *store) {
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    X509_STORE_set_verify_cb(store, ccrypto_verify_cb);
}
#endif
