/* Fast iteration for Python subclasses of the compiled receivers (receiver.pxi).
 *
 * Cython puts __next__ and __anext__ in a type's dict as methods, next to its
 * tp_iternext and am_anext slots. A class made in Python from such a type then gets
 * the generic slots (slot_tp_iternext, slot_am_anext), which look the method up and
 * call it through a bound method on every `for` or `async for` step: some 180
 * instructions a message. Where the subclass's method is still the compiled one, its
 * slot can call the compiled function directly, as the base type's does. */
#ifndef WSFAST_SUBCLASS_SLOTS_H
#define WSFAST_SUBCLASS_SLOTS_H

#include <Python.h>

/* 1 when `type` finds the same `name` as `base` does: it overrides nothing. */
static int wsfast_inherits(PyObject *type, PyObject *base, const char *name)
{
    PyObject *mine = PyObject_GetAttrString(type, name);
    if (mine == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *theirs = PyObject_GetAttrString(base, name);
    if (theirs == NULL) {
        PyErr_Clear();
        Py_DECREF(mine);
        return 0;
    }
    int same = mine == theirs;
    Py_DECREF(mine);
    Py_DECREF(theirs);
    return same;
}

/* Gives the subclass `type` the iteration slots of the compiled `base` where it does
 * not override them. Assigning __next__ or __anext__ on the class later resets its slot
 * as usual (CPython recomputes slots on every such assignment). */
static void wsfast_inherit_iteration(PyObject *type, PyObject *base)
{
    PyTypeObject *t = (PyTypeObject *)type, *b = (PyTypeObject *)base;
    if (b->tp_iternext != NULL && wsfast_inherits(type, base, "__next__"))
        t->tp_iternext = b->tp_iternext;
    if (t->tp_as_async != NULL && b->tp_as_async != NULL && b->tp_as_async->am_anext != NULL
        && wsfast_inherits(type, base, "__anext__"))
        t->tp_as_async->am_anext = b->tp_as_async->am_anext;
}

#endif
