/* Portable masking kernel: 64-bit words, then the last few bytes one by one. */
#include <string.h>

#include "mask.h"

void wsfast_mask_generic(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key)
{
    unsigned char k[8];
    uint64_t wide, word;
    size_t i = 0;

    /* memcpy keeps loads and stores legal at any alignment and byte order. */
    memcpy(k, &key, 4);
    memcpy(k + 4, &key, 4);
    memcpy(&wide, k, 8);
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= wide;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 3];
}
