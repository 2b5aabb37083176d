/* NEON masking kernel (ARM): 64 bytes per step in four 16-byte registers. */
#include "mask.h"

#ifdef WSFAST_HAVE_NEON
#include <arm_neon.h>
#include <string.h>

void wsfast_mask_neon(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key)
{
    unsigned char bytes[16];
    uint8x16_t k;
    size_t i = 0;

    /* Loaded as bytes, the key's lanes follow memory order on either byte order. */
    memcpy(bytes, &key, 4);
    memcpy(bytes + 4, &key, 4);
    memcpy(bytes + 8, bytes, 8);
    k = vld1q_u8(bytes);

    for (; i + 64 <= n; i += 64) {
        uint8x16_t a = vld1q_u8(src + i);
        uint8x16_t b = vld1q_u8(src + i + 16);
        uint8x16_t c = vld1q_u8(src + i + 32);
        uint8x16_t d = vld1q_u8(src + i + 48);
        vst1q_u8(dst + i, veorq_u8(a, k));
        vst1q_u8(dst + i + 16, veorq_u8(b, k));
        vst1q_u8(dst + i + 32, veorq_u8(c, k));
        vst1q_u8(dst + i + 48, veorq_u8(d, k));
    }
    for (; i + 16 <= n; i += 16)
        vst1q_u8(dst + i, veorq_u8(vld1q_u8(src + i), k));
    /* i is a multiple of 4, so the key is still in phase for the tail. */
    wsfast_mask_generic(dst + i, src + i, n - i, key);
}
#endif
