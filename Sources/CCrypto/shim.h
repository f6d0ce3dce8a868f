/* CCrypto: OpenSSL libcrypto (apt: libssl-dev), the only source of ciphers and MACs. */
#ifndef ENCD_CCRYPTO_H
#define ENCD_CCRYPTO_H
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#endif
