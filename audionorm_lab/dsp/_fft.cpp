/* The STFT's real transforms: numpy's pocketfft (numpy 2.4.6's copy of pocketfft_hdronly.h,
 * BSD-3-Clause, in the repository's vendor/pocketfft/), compiled twice by setup.py: for the baseline CPU
 * (audionorm_lab.dsp._fft) and with AVX2 (audionorm_lab.dsp._fft_avx2).
 *
 * pocketfft transforms several frames at once, one per vector lane, each lane doing the arithmetic of
 * a one-frame transform. numpy's wheel is built for SSE2's two lanes of float64 (scipy's for four of
 * float32); AVX2 gives four (eight). Built without contraction into FMA (-ffp-contract=off, and -mavx2
 * does not enable FMA), every build gives numpy.fft.rfft's and numpy.fft.irfft's results bit for bit,
 * and scipy.fft.rfft's in float32 (tests/test_frame_fft.py). What differs
 * besides the width: the forward transform multiplies by the analysis window as it gathers the frames
 * (numpy multiplied into a temporary first: the same products), both write into the caller's arrays,
 * and the plans (twiddle factors) are made once per length, not per call.
 *
 * The loops are pocketfft's general_r2c and general_c2r (numpy's path for rfft and irfft along the
 * last axis), with the window's product added. The Python side (audionorm_lab.dsp.frame_fft) checks every
 * buffer's type and shape; this file checks again that each buffer holds what its sizes say (in 64 bits, without
 * overflow), and no C++ exception leaves it: a failed allocation is a MemoryError, anything else a RuntimeError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define POCKETFFT_NO_MULTITHREADING  /* as numpy builds it: the callers run their own threads */
#include "pocketfft/pocketfft_hdronly.h"  /* vendor/ is on the include path (setup.py) */

#include <cstdio>
#include <exception>
#include <map>
#include <new>
#include <memory>
#include <mutex>

using pocketfft::detail::arr;
using pocketfft::detail::cmplx;
using pocketfft::detail::pocketfft_r;
using pocketfft::detail::VLEN;
using pocketfft::detail::vtype_t;

#ifndef MODULE_NAME
#define MODULE_NAME _fft
#endif
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define INIT_NAME_(name) PyInit_##name
#define INIT_NAME(name) INIT_NAME_(name)

/* One plan per transform length, made once and shared by all threads (a plan is read-only once made). */
template <typename T> static std::shared_ptr<pocketfft_r<T>> plan_for(size_t n)
{
    static std::mutex guard;
    static std::map<size_t, std::shared_ptr<pocketfft_r<T>>> plans;
    std::lock_guard<std::mutex> lock(guard);
    auto &plan = plans[n];
    if (!plan) plan = std::make_shared<pocketfft_r<T>>(n);
    return plan;
}

/* rows[r] = rfft(frames[r] * window): `count` frames of n samples, sample i of frame r at
 * frames[r * row_stride + i * step] (a sliding window over interleaved channels is read where it lies); rows hold
 * n / 2 + 1 bins each, contiguous. Lane by lane, general_r2c's forward branch. */
template <typename T>
static void windowed_rfft(const T *frames, ptrdiff_t row_stride, ptrdiff_t step, const T *window, cmplx<T> *rows,
                          size_t count, size_t n)
{
    constexpr size_t lanes = VLEN<T>::val;
    auto plan = plan_for<T>(n);
    size_t bins = n / 2 + 1, r = 0;
    arr<T> storage(n * lanes);
    for (; lanes > 1 && r + lanes <= count; r += lanes) {
        auto t = reinterpret_cast<vtype_t<T> *>(storage.data());
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < lanes; j++) t[i][j] = frames[(r + j) * row_stride + i * step] * window[i];
        plan->exec(t, T(1), true);
        for (size_t j = 0; j < lanes; j++) rows[(r + j) * bins].Set(t[0][j]);
        size_t i = 1, bin = 1;
        for (; i < n - 1; i += 2, ++bin)
            for (size_t j = 0; j < lanes; j++) rows[(r + j) * bins + bin].Set(t[i][j], t[i + 1][j]);
        if (i < n)
            for (size_t j = 0; j < lanes; j++) rows[(r + j) * bins + bin].Set(t[i][j]);
    }
    for (; r < count; r++) {  /* the frames left over, one at a time: the same arithmetic as a lane's */
        T *t = storage.data();
        for (size_t i = 0; i < n; i++) t[i] = frames[r * row_stride + i * step] * window[i];
        plan->exec(t, T(1), true);
        cmplx<T> *row = rows + r * bins;
        row[0].Set(t[0]);
        size_t i = 1, bin = 1;
        for (; i < n - 1; i += 2, ++bin) row[bin].Set(t[i], t[i + 1]);
        if (i < n) row[bin].Set(t[i]);
    }
}

/* frames[r] = irfft(rows[r], n): numpy's irfft (scaled by 1 / n), `count` rows of n / 2 + 1 bins in, frames of n
 * samples out, both contiguous. Lane by lane, general_c2r's backward branch: bins past n / 2 are not read, and
 * bin 0's imaginary part (and bin n / 2's, for even n) is ignored, as numpy ignores it. */
static void irfft(const cmplx<double> *rows, double *frames, size_t count, size_t n)
{
    constexpr size_t lanes = VLEN<double>::val;
    auto plan = plan_for<double>(n);
    size_t bins = n / 2 + 1, r = 0;
    double scale = 1.0 / (double)n;  /* numpy's fct: np.reciprocal(n), correctly rounded as this division is */
    arr<double> storage(n * lanes);
    for (; lanes > 1 && r + lanes <= count; r += lanes) {
        auto t = reinterpret_cast<vtype_t<double> *>(storage.data());
        for (size_t j = 0; j < lanes; j++) t[0][j] = rows[(r + j) * bins].r;
        size_t i = 1, bin = 1;
        for (; i < n - 1; i += 2, ++bin)
            for (size_t j = 0; j < lanes; j++) {
                t[i][j] = rows[(r + j) * bins + bin].r;
                t[i + 1][j] = rows[(r + j) * bins + bin].i;
            }
        if (i < n)
            for (size_t j = 0; j < lanes; j++) t[i][j] = rows[(r + j) * bins + bin].r;
        plan->exec(t, scale, false);
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < lanes; j++) frames[(r + j) * n + k] = t[k][j];
    }
    for (; r < count; r++) {
        double *t = frames + r * n;  /* in place in the output row, as numpy's one-frame loop does */
        const cmplx<double> *row = rows + r * bins;
        t[0] = row[0].r;
        size_t i = 1, bin = 1;
        for (; i < n - 1; i += 2, ++bin) {
            t[i] = row[bin].r;
            t[i + 1] = row[bin].i;
        }
        if (i < n) t[i] = row[bin].r;
        plan->exec(t, scale, false);
    }
}

/* What a transform left behind when it threw: nothing, an allocation that failed, or another exception's words.
 * Exceptions are caught where they are thrown, without the GIL, and raised in Python once it is taken again:
 * none may reach C, where it would end the process with std::terminate. */
struct Failure {
    enum { NONE, NO_MEMORY, OTHER } kind = NONE;
    char what[160] = {0};

    template <typename Transform> void run(Transform transform) noexcept
    {
        try {
            transform();
        } catch (const std::bad_alloc &) {
            kind = NO_MEMORY;
        } catch (const std::exception &e) {
            kind = OTHER;
            std::snprintf(what, sizeof what, "%s", e.what());
        } catch (...) {
            kind = OTHER;
            std::snprintf(what, sizeof what, "an unknown C++ exception");
        }
    }

    /* With the GIL: the Python exception for it, and whether there was one. */
    bool raise(const char *kernel) const
    {
        if (kind == NO_MEMORY) PyErr_NoMemory();
        else if (kind == OTHER) PyErr_Format(PyExc_RuntimeError, "%s: %s", kernel, what);
        return kind != NONE;
    }
};

/* a * b + c, for sizes: false where a, b or c is negative or the result passes PY_SSIZE_T_MAX. */
static bool size_sum(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c, Py_ssize_t *out)
{
    if (a < 0 || b < 0 || c < 0 || (b != 0 && a > (PY_SSIZE_T_MAX - c) / b)) return false;
    *out = a * b + c;
    return true;
}

/* Whether `len` bytes hold exactly count * per elements of `item` bytes, computed without overflow. */
static bool holds(Py_ssize_t len, Py_ssize_t count, Py_ssize_t per, Py_ssize_t item)
{
    Py_ssize_t elements, bytes;
    return size_sum(count, per, 0, &elements) && size_sum(elements, item, 0, &bytes) && len == bytes;
}

static int get(PyObject *obj, Py_buffer *view, int writable)
{
    return PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0));
}

/* Whether `len` bytes reach the last frame's last sample: ((count - 1) * row_stride + (n - 1) * step + 1) items. */
static bool frames_fit(Py_ssize_t len, Py_ssize_t count, Py_ssize_t row_stride, Py_ssize_t step, Py_ssize_t n,
                       Py_ssize_t item)
{
    Py_ssize_t last_row, last, bytes;
    return size_sum(count - 1, row_stride, 0, &last_row) && size_sum(n - 1, step, last_row, &last)
           && size_sum(last, 1, 1, &bytes) && size_sum(bytes, item, 0, &bytes) && len >= bytes;
}

/* windowed_rfft(frames, row_stride, step, window, rows, count, n, single)
 * frames: float64 (float32 if single), sample i of frame r at element r * row_stride + i * step (the buffer must
 * hold the last frame's last sample); window: float64 [n] (float32); rows: complex128 [count][n / 2 + 1]
 * (complex64), written. */
static PyObject *py_windowed_rfft(PyObject *, PyObject *args)
{
    PyObject *frames_o, *window_o, *rows_o;
    Py_ssize_t row_stride, step, count, n;
    int single;
    if (!PyArg_ParseTuple(args, "OnnOOnnp", &frames_o, &row_stride, &step, &window_o, &rows_o, &count, &n, &single))
        return NULL;
    Py_ssize_t item = single ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double);
    Py_buffer frames = {0}, window = {0}, rows = {0};
    PyObject *result = NULL;
    Failure failure;
    if (get(frames_o, &frames, 0) || get(window_o, &window, 0) || get(rows_o, &rows, 1)) goto done;
    if (n < 1 || count < 0 || row_stride < 0 || step < 1 || !holds(window.len, n, 1, item)
        || !holds(rows.len, count, n / 2 + 1, 2 * item) || (count > 0 && !frames_fit(frames.len, count, row_stride,
                                                                                          step, n, item))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the frames, their stride and n");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    failure.run([&] {
        if (single)
            windowed_rfft((const float *)frames.buf, row_stride, step, (const float *)window.buf,
                          (cmplx<float> *)rows.buf, (size_t)count, (size_t)n);
        else
            windowed_rfft((const double *)frames.buf, row_stride, step, (const double *)window.buf,
                          (cmplx<double> *)rows.buf, (size_t)count, (size_t)n);
    });
    Py_END_ALLOW_THREADS
    if (failure.raise("windowed_rfft")) goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&frames);
    PyBuffer_Release(&window);
    PyBuffer_Release(&rows);
    return result;
}

/* irfft(rows, frames, count, n)
 * rows: complex128 [count][n / 2 + 1]; frames: float64 [count][n], written. */
static PyObject *py_irfft(PyObject *, PyObject *args)
{
    PyObject *rows_o, *frames_o;
    Py_ssize_t count, n;
    if (!PyArg_ParseTuple(args, "OOnn", &rows_o, &frames_o, &count, &n)) return NULL;
    Py_buffer rows = {0}, frames = {0};
    PyObject *result = NULL;
    Failure failure;
    if (get(rows_o, &rows, 0) || get(frames_o, &frames, 1)) goto done;
    if (n < 1 || count < 0 || !holds(rows.len, count, n / 2 + 1, 2 * sizeof(double))
        || !holds(frames.len, count, n, sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the rows and n");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    failure.run([&] { irfft((const cmplx<double> *)rows.buf, (double *)frames.buf, (size_t)count, (size_t)n); });
    Py_END_ALLOW_THREADS
    if (failure.raise("irfft")) goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&rows);
    PyBuffer_Release(&frames);
    return result;
}

/* avx2_usable(): whether this CPU and its OS run AVX2 code (GCC's and clang's cpu check reads CPUID and the OS's
 * XCR0). Elsewhere than x86 there is no AVX2 build (setup.py), and the answer is no. */
static PyObject *py_avx2_usable(PyObject *, PyObject *)
{
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    __builtin_cpu_init();
    return PyBool_FromLong(__builtin_cpu_supports("avx2"));
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"windowed_rfft", py_windowed_rfft, METH_VARARGS,
     "windowed_rfft(frames, row_stride, step, window, rows, count, n, single): see audionorm_lab.dsp.frame_fft."},
    {"irfft", py_irfft, METH_VARARGS, "irfft(rows, frames, count, n): see audionorm_lab.dsp.frame_fft."},
    {"avx2_usable", py_avx2_usable, METH_NOARGS, "Whether this CPU and its OS run AVX2 code."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, STRINGIFY(MODULE_NAME), NULL, -1, methods};

PyMODINIT_FUNC INIT_NAME(MODULE_NAME)(void) { return PyModule_Create(&module); }
