/*
 * Optional C acceleration for wslab.foundation.frames: masking (RFC 6455 section 5.3).
 *
 * The pure-Python apply_mask_python() is the reference; this does the same XOR eight bytes at a
 * time, so unmasking a 16 MiB payload costs about as much as copying it. If the extension is not
 * built, wslab falls back to the Python version with the same results (tests compare the two).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* XOR n bytes of in with the 4-byte key into out, eight bytes at a time. */
static void
xor_mask(unsigned char *out, const unsigned char *in, Py_ssize_t n, const unsigned char *key)
{
    Py_ssize_t i = 0;
    /* The mask repeats every 4 bytes, so an 8-byte word of it is the key twice. */
    uint64_t word_mask;
    unsigned char key8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    memcpy(&word_mask, key8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, in + i, 8); /* memcpy: no unaligned access, compiles to one load */
        chunk ^= word_mask;
        memcpy(out + i, &chunk, 8);
    }
    for (; i < n; i++) {
        out[i] = in[i] ^ key[i & 3];
    }
}

/* header + masked payload in one allocation: a large frame is copied once, not twice. */
static PyObject *
mask_frame(PyObject *self, PyObject *args)
{
    Py_buffer header, data, mask;
    if (!PyArg_ParseTuple(args, "y*y*y*:mask_frame", &header, &data, &mask)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key must be exactly 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, header.len + data.len);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    memcpy(out, header.buf, header.len);
    Py_BEGIN_ALLOW_THREADS
    xor_mask(out + header.len, (const unsigned char *)data.buf, data.len,
             (const unsigned char *)mask.buf);
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&header);
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, mask;
    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "the masking key must be exactly 4 bytes");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&mask);
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)data.buf;
    const unsigned char *key = (const unsigned char *)mask.buf;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t n = data.len;

    Py_BEGIN_ALLOW_THREADS
    xor_mask(out, in, n, key);
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS, "XOR data with a 4-byte mask repeated."},
    {"mask_frame", mask_frame, METH_VARARGS, "header + data XOR-ed with the mask, one copy."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "wslab.foundation._speedups",
    "C acceleration of WebSocket masking.", -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
