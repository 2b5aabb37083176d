/* Checks every masking kernel of this build that this CPU can run, and the dispatcher,
 * against a byte-by-byte reference: every length 0..300 and a few large ones (up to the
 * AVX2 kernel's streaming path), every destination alignment within 64 bytes with
 * several source alignments, in place and not, in every key phase. The bytes around the
 * destination must stay untouched.
 *
 * Prints the kernels it checked and the one mask_dispatch.c chose, then "ok"; exits 1
 * on the first failures. tests/test_c_kernels.py builds and runs it, natively and
 * cross-compiled for aarch64 under qemu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"

typedef void (*kernel_fn)(unsigned char *, const unsigned char *, size_t, uint32_t);

struct kernel {
    const char *name;
    kernel_fn fn;  /* NULL: through wsfast_mask, the dispatcher */
};

#define ALIGN 64
#define SLACK (2 * ALIGN)
#define LARGEST ((4u << 20) + 300)

static const unsigned char key[4] = {0x9b, 0x01, 0xe4, 0x5c};
static const size_t source_offsets[] = {0, 1, 2, 3, 5, 16, 31, 45};
static unsigned char *src, *dst, *expected;
static unsigned long checks, failures;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

/* The kernels take the key as a word, rotated so that its first byte applies first. */
static uint32_t key_word(size_t phase)
{
    unsigned char rotated[4];
    uint32_t word;
    size_t i;
    for (i = 0; i < 4; i++)
        rotated[i] = key[(i + phase) & 3];
    memcpy(&word, rotated, 4);
    return word;
}

/* One call: n bytes at src + s_off into dst + d_off (or in place at dst + d_off). */
static void check(const struct kernel *k, size_t n, size_t s_off, size_t d_off, int in_place, size_t phase)
{
    size_t total = n + SLACK, i;
    const unsigned char *from;

    fill(dst, total, (unsigned)(n * 131 + d_off));
    if (in_place) {
        from = dst + d_off;
    } else {
        fill(src, total, (unsigned)(n * 7 + s_off));
        from = src + s_off;
    }
    memcpy(expected, dst, total);
    for (i = 0; i < n; i++)
        expected[d_off + i] = from[i] ^ key[(i + phase) & 3];

    if (k->fn)
        k->fn(dst + d_off, from, n, key_word(phase));
    else
        wsfast_mask(dst + d_off, from, n, key, phase);

    checks++;
    if (memcmp(dst, expected, total) != 0) {
        for (i = 0; i < total && dst[i] == expected[i]; i++)
            ;
        if (failures++ < 10)
            printf("FAIL %s: n=%zu src+%zu dst+%zu %s phase %zu: byte %zu (%s) is %02x, not %02x\n",
                   k->name, n, in_place ? d_off : s_off, d_off, in_place ? "in place" : "copy", phase,
                   i, (i >= d_off && i < d_off + n) ? "masked" : "outside", dst[i], expected[i]);
    }
}

static void check_kernel(const struct kernel *k)
{
    static const size_t large[] = {1023, 4096 + 13, 65536 + 7, LARGEST - 77, LARGEST};
    size_t n, d, s, i;

    /* The phase turns with the alignment: each length meets every phase many times. */
    for (n = 0; n <= 300; n++)
        for (d = 0; d < ALIGN; d++) {
            check(k, n, d, d, 1, (n + d) & 3);
            for (s = 0; s < sizeof source_offsets / sizeof *source_offsets; s++)
                check(k, n, source_offsets[s], d, 0, (n + d + s) & 3);
        }
    for (i = 0; i < sizeof large / sizeof *large; i++)
        for (d = 0; d < 4; d++) {
            check(k, large[i], d, d * 5, 1, d);
            check(k, large[i], 3 - d, d * 9, 0, d);
        }
}

int main(void)
{
    struct kernel kernels[6];
    size_t count = 0, i;
    const char *chosen;

    src = malloc(LARGEST + SLACK);
    dst = malloc(LARGEST + SLACK);
    expected = malloc(LARGEST + SLACK);
    if (!src || !dst || !expected)
        return 2;

    if (strcmp(wsfast_mask_kernel_name(), "generic") != 0) {
        printf("FAIL: before wsfast_mask_init the kernel is %s, not generic\n", wsfast_mask_kernel_name());
        return 1;
    }
    kernels[count].name = "generic";
    kernels[count++].fn = wsfast_mask_generic;
#ifdef WSFAST_HAVE_SSE2
    kernels[count].name = "sse2";
    kernels[count++].fn = wsfast_mask_sse2;
#endif
#if defined(WSFAST_HAVE_AVX2) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        kernels[count].name = "avx2";
        kernels[count++].fn = wsfast_mask_avx2;
    }
#endif
#ifdef WSFAST_HAVE_NEON
    kernels[count].name = "neon";
    kernels[count++].fn = wsfast_mask_neon;
#endif
    wsfast_mask_init();
    chosen = wsfast_mask_kernel_name();
    kernels[count].name = "dispatch";
    kernels[count++].fn = NULL;

    printf("kernels:");
    for (i = 0; i < count; i++) {
        printf(" %s", kernels[i].name);
        fflush(stdout);
        check_kernel(&kernels[i]);
    }
    printf("\nchosen: %s\n", chosen);
    /* The chosen kernel is the last real one checked: the widest this CPU runs. */
    if (strcmp(chosen, kernels[count - 2].name) != 0) {
        printf("FAIL: the dispatcher chose %s, not %s\n", chosen, kernels[count - 2].name);
        failures++;
    }
    printf("%s: %lu checks, %lu failures\n", failures ? "FAILED" : "ok", checks, failures);
    return failures ? 1 : 0;
}
