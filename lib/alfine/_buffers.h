/* What alfine's C modules (_labels.c, _agglomeration.c) share: taking an array argument through the buffer
 * protocol. Included by each; Python.h first. */
#ifndef ALFINE_BUFFERS_H
#define ALFINE_BUFFERS_H

/* Fills view with obj's C-contiguous buffer of items of itemsize bytes (any size: 0; writable if asked); -1 with an
 * exception naming the argument. */
static int
get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int writable, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        return -1;
    }
    if (itemsize && view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected %zd-byte items, got %zd-byte ones", name, itemsize,
                     view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#endif
