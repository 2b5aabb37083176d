/* SSE2 masking kernel: 64 bytes per step in four 16-byte registers. */
#include "mask.h"

#ifdef WSFAST_HAVE_SSE2
#include <emmintrin.h>

void wsfast_mask_sse2(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key)
{
    const __m128i k = _mm_set1_epi32((int)key);
    size_t i = 0;

    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
        _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k));
        _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k));
        _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k));
    }
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
    }
    /* i is a multiple of 4, so the key is still in phase for the tail. */
    wsfast_mask_generic(dst + i, src + i, n - i, key);
}
#endif
