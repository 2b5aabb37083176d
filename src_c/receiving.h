/* The coroutine protocol of the compiled awaitables (receiver.pxi, stream_core.pxi), for the
 * parts Cython does not reach: the am_send slot, through which `await` takes a result
 * without raising StopIteration, and sending into the coroutine it waits on. */
#ifndef WSFAST_RECEIVING_H
#define WSFAST_RECEIVING_H

#include <Python.h>

/* One step of an awaitable: returns the value it yields (*yielded set) or returns,
 * or NULL with an exception set. */
typedef PyObject *(*wsfast_step)(PyObject *self, PyObject *arg, int *yielded);

/* The step of each awaitable type (the receiver's and the sender's), by the order in
 * which they were installed. */
static wsfast_step wsfast_steps[2];

static PySendResult wsfast_send_with(wsfast_step step, PyObject *self, PyObject *arg, PyObject **result)
{
    int yielded = 0;
    *result = step(self, arg, &yielded);
    if (*result == NULL)
        return PYGEN_ERROR;
    return yielded ? PYGEN_NEXT : PYGEN_RETURN;
}

static PySendResult wsfast_send_0(PyObject *self, PyObject *arg, PyObject **result)
{
    return wsfast_send_with(wsfast_steps[0], self, arg, result);
}

static PySendResult wsfast_send_1(PyObject *self, PyObject *arg, PyObject **result)
{
    return wsfast_send_with(wsfast_steps[1], self, arg, result);
}

/* Gives `type` (which has am_await) an am_send slot that runs `step`; at most two types. */
static int wsfast_install_send(PyObject *type, wsfast_step step)
{
    static int installed = 0;
    if (installed == 2) {
        PyErr_SetString(PyExc_RuntimeError, "no am_send slot left");
        return -1;
    }
    wsfast_steps[installed] = step;
    ((PyTypeObject *)type)->tp_as_async->am_send = installed == 0 ? wsfast_send_0 : wsfast_send_1;
    installed++;
    return 0;
}

/* Sends `arg` into a coroutine: 1 when it yielded *result, 0 when it returned *result,
 * -1 with an exception set. */
static int wsfast_coro_send(PyObject *coro, PyObject *arg, PyObject **result)
{
    PySendResult status = PyIter_Send(coro, arg, result);
    return status == PYGEN_ERROR ? -1 : status == PYGEN_NEXT;
}

#endif
