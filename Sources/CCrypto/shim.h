// libcrypto entry points sensgate uses: SHA-256 digest contexts (for HMAC-SHA256), base64, constant-time compare.
#ifndef SENSGATE_CCRYPTO_SHIM_H
#define SENSGATE_CCRYPTO_SHIM_H
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#endif
