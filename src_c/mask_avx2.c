/* AVX2 masking kernel: 128 bytes per step in four 32-byte registers. Only these
 * functions are compiled for AVX2; mask_dispatch.c calls the kernel after checking the CPU. */
#include "mask.h"

#ifdef WSFAST_HAVE_AVX2
#include <immintrin.h>
#include <string.h>

#ifdef _MSC_VER
/* MSVC has no per-function target: setup.py compiles this file alone with /arch:AVX2. */
#define AVX2_FUNCTION
#define AVX2_INLINE static __forceinline
#else
#define AVX2_FUNCTION __attribute__((target("avx2")))
#define AVX2_INLINE __attribute__((target("avx2"), always_inline)) static inline
#endif

/* From this size a copy to a separate buffer would push the whole cache out: write
 * around the cache instead (what memcpy does for such sizes too). */
#define STREAMING_THRESHOLD (4u << 20)

/* One step of the wide loop: 128 bytes in four registers. `streaming` stores around
 * the cache and needs dst 32-byte aligned; it is a constant wherever this is inlined. */
AVX2_INLINE void mask128(unsigned char *dst, const unsigned char *src, __m256i k, int streaming)
{
    __m256i a = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)src), k);
    __m256i b = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + 32)), k);
    __m256i c = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + 64)), k);
    __m256i d = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(src + 96)), k);
    if (streaming) {
        _mm256_stream_si256((__m256i *)dst, a);
        _mm256_stream_si256((__m256i *)(dst + 32), b);
        _mm256_stream_si256((__m256i *)(dst + 64), c);
        _mm256_stream_si256((__m256i *)(dst + 96), d);
    } else {
        _mm256_storeu_si256((__m256i *)dst, a);
        _mm256_storeu_si256((__m256i *)(dst + 32), b);
        _mm256_storeu_si256((__m256i *)(dst + 64), c);
        _mm256_storeu_si256((__m256i *)(dst + 96), d);
    }
}

AVX2_FUNCTION void wsfast_mask_avx2(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key)
{
    size_t i = 0, head = (size_t)(0u - (uintptr_t)dst) & 31;
    __m256i k;

    /* Stores that straddle cache lines cost the most: start the wide loop at a
     * 32-byte boundary of dst, after a few bytes done by the portable kernel. */
    if (head && n >= 256) {
        unsigned char twice[8];
        wsfast_mask_generic(dst, src, head, key);
        memcpy(twice, &key, 4);
        memcpy(twice + 4, &key, 4);
        memcpy(&key, twice + (head & 3), 4);
        dst += head;
        src += head;
        n -= head;
    }
    k = _mm256_set1_epi32((int)key);
    if (n >= STREAMING_THRESHOLD && dst != src) {
        for (; i + 128 <= n; i += 128)
            mask128(dst + i, src + i, k, 1);
        _mm_sfence();  /* streamed stores are weakly ordered: finish them before returning */
    }
    for (; i + 128 <= n; i += 128)
        mask128(dst + i, src + i, k, 0);
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
    }
    /* i is a multiple of 4, so the key is still in phase for the tail. */
    wsfast_mask_generic(dst + i, src + i, n - i, key);
}
#endif
