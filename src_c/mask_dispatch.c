/* Chooses the masking kernel from the features of the CPU running the code. */
#include "mask.h"

#include <string.h>

#if defined(WSFAST_HAVE_AVX2) && defined(_MSC_VER)
#include <intrin.h>
#endif

typedef void (*mask_kernel)(unsigned char *, const unsigned char *, size_t, uint32_t);

static mask_kernel kernel = wsfast_mask_generic;
static const char *kernel_name = "generic";

#ifdef WSFAST_HAVE_AVX2
/* AVX2 needs the CPU to have it and the OS to save the YMM registers on a switch. */
static int cpu_has_avx2(void)
{
#ifdef _MSC_VER
    int r[4];

    __cpuid(r, 0);
    if (r[0] < 7)
        return 0;
    __cpuid(r, 1);
    /* ECX bit 27: the OS enabled XSAVE, so XGETBV exists; bit 28: AVX. */
    if (((unsigned)r[2] & (3u << 27)) != (3u << 27))
        return 0;
    /* XCR0 bits 1 and 2: the OS saves the XMM and YMM state. */
    if ((_xgetbv(0) & 6) != 6)
        return 0;
    __cpuidex(r, 7, 0);
    return ((unsigned)r[1] >> 5) & 1;  /* EBX bit 5: AVX2 */
#else
    /* Checks the OS support (XGETBV) too. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#endif
}
#endif

void wsfast_mask_init(void)
{
#ifdef WSFAST_HAVE_NEON
    kernel = wsfast_mask_neon;
    kernel_name = "neon";
#endif
#ifdef WSFAST_HAVE_SSE2
    kernel = wsfast_mask_sse2;
    kernel_name = "sse2";
#endif
#ifdef WSFAST_HAVE_AVX2
    if (cpu_has_avx2()) {
        kernel = wsfast_mask_avx2;
        kernel_name = "avx2";
    }
#endif
}

const char *wsfast_mask_kernel_name(void)
{
    return kernel_name;
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
