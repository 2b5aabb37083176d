# C declarations of the kernels in this directory, for _compiled.pyx.

from libc.stdint cimport uint64_t


cdef extern from "mask.h" nogil:
    void wsfast_mask_init()
    void wsfast_mask(unsigned char *dst, const unsigned char *src, size_t n,
                     const unsigned char *key, size_t phase)


cdef extern from "frame_header.h" nogil:
    enum: WSFAST_MAX_HEADER

    ctypedef struct wsfast_header:
        uint64_t length
        size_t size
        unsigned char opcode
        unsigned char fin
        unsigned char rsv
        unsigned char key[4]

    ctypedef enum wsfast_header_status:
        WSFAST_HEADER_OK
        WSFAST_HEADER_INCOMPLETE
        WSFAST_BAD_RSV
        WSFAST_BAD_OPCODE
        WSFAST_FRAGMENTED_CONTROL
        WSFAST_LONG_CONTROL
        WSFAST_BAD_MASK
        WSFAST_LENGTH_MSB
        WSFAST_TOO_BIG

    wsfast_header_status wsfast_parse_header(const unsigned char *p, size_t avail,
                                             unsigned allowed_rsv, int masked,
                                             uint64_t max_size, wsfast_header *h)
