/* Frame header parsing: the per-frame checks of RFC 6455 section 5.2. */
#include "frame_header.h"

#include <string.h>

/* Bit n set when opcode n is defined: continuation, text, binary, close, ping, pong. */
#define KNOWN_OPCODES 0x0707u

wsfast_header_status wsfast_parse_header(const unsigned char *p, size_t avail,
                                         unsigned allowed_rsv, int masked,
                                         uint64_t max_size, wsfast_header *h)
{
    uint64_t length;
    size_t size = 2;
    int i;

    if (avail < 2)
        return WSFAST_HEADER_INCOMPLETE;
    h->fin = p[0] >> 7;
    h->rsv = (p[0] >> 4) & 7;
    h->opcode = p[0] & 0x0F;
    length = p[1] & 0x7F;
    if (h->rsv & ~allowed_rsv)
        return WSFAST_BAD_RSV;
    if (!((KNOWN_OPCODES >> h->opcode) & 1))
        return WSFAST_BAD_OPCODE;
    if (h->opcode >= 8) {
        if (!h->fin)
            return WSFAST_FRAGMENTED_CONTROL;
        if (length > 125)
            return WSFAST_LONG_CONTROL;
    }
    if ((p[1] >> 7) != masked)
        return WSFAST_BAD_MASK;
    if (length == 126) {
        size = 4;
        if (avail < size)
            return WSFAST_HEADER_INCOMPLETE;
        length = ((uint64_t)p[2] << 8) | p[3];
    } else if (length == 127) {
        size = 10;
        if (avail < size)
            return WSFAST_HEADER_INCOMPLETE;
        length = 0;
        for (i = 2; i < 10; i++)
            length = (length << 8) | p[i];
        if (length >> 63)
            return WSFAST_LENGTH_MSB;
    }
    h->length = length;
    /* Before the masking key is even needed: a too-big frame fails on its length. */
    if (length > max_size)
        return WSFAST_TOO_BIG;
    if (masked) {
        if (avail < size + 4)
            return WSFAST_HEADER_INCOMPLETE;
        memcpy(h->key, p + size, 4);
        size += 4;
    }
    h->size = size;
    return WSFAST_HEADER_OK;
}
