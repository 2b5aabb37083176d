/* What the compiled connections (stream_core.pxi, blocking_core.pxi) need from the
 * system: a non-blocking send() on a TCP socket, a recv() that waits (its socket's receive
 * timeout bounds the wait), and the monotonic clock asyncio's loop reads. */
#ifndef WSFAST_DIRECT_IO_H
#define WSFAST_DIRECT_IO_H

#include <Python.h>

#define WSFAST_RECV_NOTHING (-1)
#define WSFAST_RECV_SIGNAL (-2)
#define WSFAST_RECV_FAILED (-3)

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
static Py_ssize_t wsfast_recv(long fd, char *data, Py_ssize_t size, int *error)
{
    (void)fd;
    (void)data;
    (void)size;
    *error = 0;
    return WSFAST_RECV_NOTHING;
}
static Py_ssize_t wsfast_wait_readable(long fd, int milliseconds)
{
    (void)fd;
    (void)milliseconds;
    return WSFAST_RECV_NOTHING;
}
static int wsfast_bytes_waiting(long fd)
{
    (void)fd;
    return 0;
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
/* Bytes read into data, 0 at the end of the stream, or: WSFAST_RECV_NOTHING (the
 * socket's receive timeout passed), WSFAST_RECV_SIGNAL (a signal came, which the caller
 * lets Python handle), WSFAST_RECV_FAILED with *error set to errno. Called without the
 * GIL. */
static Py_ssize_t wsfast_recv(long fd, char *data, Py_ssize_t size, int *error)
{
    ssize_t got = recv((int)fd, data, (size_t)size, 0);
    if (got >= 0)
        return (Py_ssize_t)got;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WSFAST_RECV_NOTHING;
    if (errno == EINTR)
        return WSFAST_RECV_SIGNAL;
    *error = errno;
    return WSFAST_RECV_FAILED;
}
#include <poll.h>
#include <sys/ioctl.h>
/* 1 once fd is readable (or failed: the read that follows reports it), else
 * WSFAST_RECV_NOTHING after the given time, or WSFAST_RECV_SIGNAL. Called without the GIL. */
static Py_ssize_t wsfast_wait_readable(long fd, int milliseconds)
{
    struct pollfd entry = {(int)fd, POLLIN, 0};
    int ready = poll(&entry, 1, milliseconds);
    if (ready > 0)
        return 1;
    if (ready < 0 && errno == EINTR)
        return WSFAST_RECV_SIGNAL;
    return ready < 0 ? 1 : WSFAST_RECV_NOTHING;
}
/* Whether the kernel holds received bytes of fd not read yet. */
static int wsfast_bytes_waiting(long fd)
{
    int count = 0;
    return ioctl((int)fd, FIONREAD, &count) == 0 && count > 0;
}
#endif

/* The fast paths of the blocking connection lean on the GIL: with it held and no Python
 * code run, no other thread can be inside the connection's locks. Without a GIL they are
 * off, and every call takes the locks' way. */
#ifdef Py_GIL_DISABLED
#define WSFAST_GIL_GUARDS 0
#else
#define WSFAST_GIL_GUARDS 1
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
