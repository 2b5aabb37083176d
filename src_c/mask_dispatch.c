/* Chooses the masking kernel from the features of the CPU running the code. */
#include "mask.h"

#include <string.h>

typedef void (*mask_kernel)(unsigned char *, const unsigned char *, size_t, uint32_t);

static mask_kernel kernel = wsfast_mask_generic;

void wsfast_mask_init(void)
{
#ifdef WSFAST_HAVE_SSE2
    kernel = wsfast_mask_sse2;
#endif
#ifdef WSFAST_HAVE_AVX2
    /* Also checks that the OS saves the AVX registers (XGETBV). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        kernel = wsfast_mask_avx2;
#endif
}

void wsfast_mask(unsigned char *dst, const unsigned char *src, size_t n,
                 const unsigned char key[4], size_t phase)
{
    unsigned char rotated[4];
    uint32_t word;
    size_t i;

    if (n == 0)
        return;  /* an empty buffer may have no memory at all: not even src + 0 is valid */
    for (i = 0; i < 4; i++)
        rotated[i] = key[(i + phase) & 3];
    memcpy(&word, rotated, 4);
    kernel(dst, src, n, word);
}
