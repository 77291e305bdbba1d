// libcrypto entry points sensgate uses: one-shot HMAC-SHA256 and base64.
#ifndef SENSGATE_CCRYPTO_SHIM_H
#define SENSGATE_CCRYPTO_SHIM_H
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#endif
