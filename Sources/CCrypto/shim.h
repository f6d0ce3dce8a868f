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
/* Composite macros Swift does not import. */
static inline int ccrypto_select_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int ccrypto_select_keypair(void) { return EVP_PKEY_KEYPAIR; }
/* Parameter names with static storage: OSSL_PARAM_BLD keeps the key pointer until
 * OSSL_PARAM_BLD_to_param, so a temporary C string from Swift would dangle. */
static inline const char *ccrypto_param_group_name(void) { return OSSL_PKEY_PARAM_GROUP_NAME; }
static inline const char *ccrypto_param_pub_key(void) { return OSSL_PKEY_PARAM_PUB_KEY; }
static inline const char *ccrypto_param_priv_key(void) { return OSSL_PKEY_PARAM_PRIV_KEY; }
#endif
