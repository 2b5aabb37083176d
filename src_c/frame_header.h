/* Parsing and validation of one WebSocket frame header (RFC 6455 section 5.2). */
#ifndef WSFAST_FRAME_HEADER_H
#define WSFAST_FRAME_HEADER_H

#include <stddef.h>
#include <stdint.h>

/* Longest header: 2 bytes, a 64-bit length and a 4-byte masking key. */
#define WSFAST_MAX_HEADER 14

typedef struct {
    uint64_t length;       /* payload bytes */
    size_t size;           /* header bytes, masking key included */
    unsigned char opcode;
    unsigned char fin;
    unsigned char rsv;     /* RSV1, RSV2, RSV3 as the bits 4, 2, 1 */
    unsigned char key[4];  /* masking key, when the frame is masked */
} wsfast_header;

/* Outcomes. Faults are checked in this order, which the pure-Python parser shares,
 * so both report the same first fault at the same byte. */
typedef enum {
    WSFAST_HEADER_OK = 0,
    WSFAST_HEADER_INCOMPLETE,   /* more bytes needed; only when fewer than 14 are given */
    WSFAST_BAD_RSV,             /* a reserved bit outside allowed_rsv */
    WSFAST_BAD_OPCODE,
    WSFAST_FRAGMENTED_CONTROL,
    WSFAST_LONG_CONTROL,        /* control payload over 125 bytes */
    WSFAST_BAD_MASK,            /* mask bit differs from `masked` */
    WSFAST_LENGTH_MSB,          /* 64-bit length with its top bit set */
    WSFAST_TOO_BIG              /* length over max_size; h->length is set */
} wsfast_header_status;

/* Reads the header at p (avail bytes readable) into *h. `masked` is 1 when frames
 * must be masked (parsing a client's frames), 0 when they must not be. */
wsfast_header_status wsfast_parse_header(const unsigned char *p, size_t avail,
                                         unsigned allowed_rsv, int masked,
                                         uint64_t max_size, wsfast_header *h);

#endif
