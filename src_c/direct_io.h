/* What the compiled asyncio connection (stream_core.pxi) needs from the system: a
 * non-blocking send() on a TCP socket, and the monotonic clock asyncio's loop reads. */
#ifndef WSFAST_DIRECT_IO_H
#define WSFAST_DIRECT_IO_H

#include <Python.h>

#ifdef _WIN32
/* The proactor loop owns its sockets' writes: every byte goes through the transport. */
#define WSFAST_DIRECT_SEND 0
static Py_ssize_t wsfast_direct_send(long fd, const char *data, Py_ssize_t size)
{
    (void)fd;
    (void)data;
    (void)size;
    return -1;
}
#else
#include <errno.h>
#include <sys/socket.h>
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: Python ignores SIGPIPE */
#endif
#define WSFAST_DIRECT_SEND 1
/* Bytes sent, or -1 (nothing sent: the socket is full, or failed, which the transport
 * then finds out itself). Never blocks. */
static Py_ssize_t wsfast_direct_send(long fd, const char *data, Py_ssize_t size)
{
    ssize_t sent;
    do {
        sent = send((int)fd, data, (size_t)size, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : (Py_ssize_t)sent;
}
#endif

/* time.monotonic(), which asyncio's loop.time() is, without a call through Python. */
static double wsfast_monotonic(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t now;
    if (PyTime_MonotonicRaw(&now) < 0)
        return 0.0; /* cannot fail on the platforms CPython runs on */
    return PyTime_AsSecondsDouble(now);
#else
    return _PyTime_AsSecondsDouble(_PyTime_GetMonotonicClock());
#endif
}

#endif
