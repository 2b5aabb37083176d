/* The coroutine protocol of the compiled Receiver's awaitable (receiver.pxi), for the
 * parts Cython does not reach: the am_send slot, through which `await` takes a result
 * without raising StopIteration, and sending into the coroutine it waits on. */
#ifndef WSFAST_RECEIVING_H
#define WSFAST_RECEIVING_H

#include <Python.h>

/* One step of the awaitable: returns the value it yields (*yielded set) or returns,
 * or NULL with an exception set. */
typedef PyObject *(*wsfast_step)(PyObject *self, PyObject *arg, int *yielded);

static wsfast_step wsfast_receiving_step;

static PySendResult wsfast_receiving_send(PyObject *self, PyObject *arg, PyObject **result)
{
    int yielded = 0;
    *result = wsfast_receiving_step(self, arg, &yielded);
    if (*result == NULL)
        return PYGEN_ERROR;
    return yielded ? PYGEN_NEXT : PYGEN_RETURN;
}

/* Gives `type` (which has am_await) an am_send slot that runs `step`. */
static void wsfast_install_send(PyObject *type, wsfast_step step)
{
    wsfast_receiving_step = step;
    ((PyTypeObject *)type)->tp_as_async->am_send = wsfast_receiving_send;
}

/* Sends `arg` into a coroutine: 1 when it yielded *result, 0 when it returned *result,
 * -1 with an exception set. */
static int wsfast_coro_send(PyObject *coro, PyObject *arg, PyObject **result)
{
    PySendResult status = PyIter_Send(coro, arg, result);
    return status == PYGEN_ERROR ? -1 : status == PYGEN_NEXT;
}

#endif
