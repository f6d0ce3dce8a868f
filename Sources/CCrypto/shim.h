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
#endif
