/* Masking of WebSocket payloads (RFC 6455 section 5.3): every byte is XOR-ed with
 * the 4-byte masking key, repeated. One kernel per instruction set; mask_dispatch.c
 * picks the fastest one this CPU can run. */
#ifndef WSFAST_MASK_H
#define WSFAST_MASK_H

#include <stddef.h>
#include <stdint.h>

/* SSE2 is compiled in where the target always has it (every x86-64 CPU). */
#if defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__) || \
    (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#define WSFAST_HAVE_SSE2 1
#endif

/* AVX2 is compiled in on x86 and chosen only after checking the CPU at run time, so
 * the same binary still runs on CPUs without it: gcc and clang build just its functions
 * for AVX2, MSVC builds mask_avx2.c alone with /arch:AVX2 (setup.py). clang-cl, which is
 * neither, keeps SSE2: with WSFAST_HAVE_AVX2, _MSC_VER means MSVC itself. */
#if (defined(__GNUC__) && !defined(_MSC_VER) && (defined(__x86_64__) || defined(__i386__))) || \
    (defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86)))
#define WSFAST_HAVE_AVX2 1
#endif

/* NEON (Advanced SIMD) is part of every aarch64 CPU, where compilers always define
 * __ARM_NEON; 32-bit ARM has it only when built for it (-mfpu=neon), and then the whole
 * binary needs it anyway. Either way no run-time check is needed. */
#if defined(__ARM_NEON) || defined(_M_ARM64)
#define WSFAST_HAVE_NEON 1
#endif

/* Kernels: dst[i] = src[i] ^ key byte (i % 4), for i < n. `key` holds the four key
 * bytes in memory order, already rotated so that its first byte applies to dst[0].
 * dst may be src (masking in place); any length and alignment. */
void wsfast_mask_generic(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key);
#ifdef WSFAST_HAVE_SSE2
void wsfast_mask_sse2(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key);
#endif
#ifdef WSFAST_HAVE_AVX2
void wsfast_mask_avx2(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key);
#endif
#ifdef WSFAST_HAVE_NEON
void wsfast_mask_neon(unsigned char *dst, const unsigned char *src, size_t n, uint32_t key);
#endif

/* Selects the kernel for this CPU. Call once before masking in parallel threads;
 * until then the portable kernel is used. */
void wsfast_mask_init(void);

/* The name of the kernel in use: "avx2", "sse2", "neon" or "generic". */
const char *wsfast_mask_kernel_name(void);

/* Masks n bytes that sit `phase` bytes into a payload masked with `key`: phase lets a
 * payload arriving in pieces be unmasked piece by piece. dst may be src; both may be
 * NULL when n is 0. */
void wsfast_mask(unsigned char *dst, const unsigned char *src, size_t n,
                 const unsigned char key[4], size_t phase);

#endif
