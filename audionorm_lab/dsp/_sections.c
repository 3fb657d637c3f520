/* Second-order sections over interleaved float32 frames, float64 arithmetic, without the GIL.
 *
 * The recurrence is scipy.signal.sosfilt's (direct form II transposed), term for term and in
 * its order, so the results equal scipy's bit for bit (compiled without contraction into FMA:
 * -ffp-contract=off). What differs is the loop order: scipy filters one channel after the
 * other, and each sample waits for the one before it in the same section; here the channels of
 * a frame go through each section together, so their recurrences overlap in the CPU (and in
 * one SIMD register for stereo). The Python side (audionorm_lab.dsp.sections) checks every
 * buffer's type and shape; this file trusts them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_SECTIONS 32

/* Channels first .. first + CH - 1 of `frames` interleaved frames (`stride` channels each) through
 * S sections, a frame at a time. With S known when compiled (FILTER_FIXED) and a pair of
 * channels, the loops unroll and the pair's state stays in vector registers, so the CPU overlaps
 * one frame's later sections with the next frame's first ones. `power`, if given, gets sum(weight * y ** 2) over these channels (added, in
 * channel order, to what it holds when `first` > 0). */
#define FILTER_BODY(S, CH)                                                                            \
    double z0[MAX_SECTIONS][CH], z1[MAX_SECTIONS][CH];                                                \
    for (Py_ssize_t s = 0; s < (S); s++)                                                              \
        for (Py_ssize_t ch = 0; ch < (CH); ch++) {                                                    \
            z0[s][ch] = state[2 * stride * s + first + ch];                                           \
            z1[s][ch] = state[2 * stride * s + stride + first + ch];                                  \
        }                                                                                             \
    for (Py_ssize_t n = 0; n < frames; n++) {                                                         \
        double x[CH];                                                                                 \
        for (Py_ssize_t ch = 0; ch < (CH); ch++) x[ch] = in[n * stride + first + ch];                 \
        for (Py_ssize_t s = 0; s < (S); s++) {                                                        \
            const double *c = sos + 6 * s;                                                            \
            for (Py_ssize_t ch = 0; ch < (CH); ch++) {                                                \
                double x_cur = x[ch];                                                                 \
                double x_new = c[0] * x_cur + z0[s][ch];                                              \
                z0[s][ch] = c[1] * x_cur - c[4] * x_new + z1[s][ch];                                  \
                z1[s][ch] = c[2] * x_cur - c[5] * x_new;                                              \
                x[ch] = x_new;                                                                        \
            }                                                                                         \
        }                                                                                             \
        if (out)                                                                                      \
            for (Py_ssize_t ch = 0; ch < (CH); ch++) out[n * stride + first + ch] = (float)x[ch];     \
        if (power) {                                                                                  \
            double sum = x[0] * x[0] * weights[first];                                                \
            if (first) sum = power[n] + sum;                                                          \
            for (Py_ssize_t ch = 1; ch < (CH); ch++) sum = sum + x[ch] * x[ch] * weights[first + ch]; \
            power[n] = sum;                                                                           \
        }                                                                                             \
    }                                                                                                 \
    for (Py_ssize_t s = 0; s < (S); s++)                                                              \
        for (Py_ssize_t ch = 0; ch < (CH); ch++) {                                                    \
            state[2 * stride * s + first + ch] = z0[s][ch];                                           \
            state[2 * stride * s + stride + first + ch] = z1[s][ch];                                  \
        }

typedef void (*group_filter)(const double *sos, Py_ssize_t sections, double *state, const float *in,
                             float *out, double *power, const double *weights, Py_ssize_t frames,
                             Py_ssize_t stride, Py_ssize_t first);

#define FILTER_FIXED(S, CH)                                                                           \
    static void filter_##S##_##CH(const double *sos, Py_ssize_t sections, double *state, const float *in, \
                                  float *out, double *power, const double *weights, Py_ssize_t frames, \
                                  Py_ssize_t stride, Py_ssize_t first)                                \
    {                                                                                                 \
        (void)sections;                                                                               \
        FILTER_BODY(S, CH)                                                                            \
    }

#define FILTER_ANY(CH)                                                                                \
    static void filter_any_##CH(const double *sos, Py_ssize_t sections, double *state, const float *in, \
                                float *out, double *power, const double *weights, Py_ssize_t frames,  \
                                Py_ssize_t stride, Py_ssize_t first)                                  \
    {                                                                                                 \
        FILTER_BODY(sections, CH)                                                                     \
    }

/* The section counts the chain uses: 2 (K-weighting; a high-pass), 4 (the voice band), 6 (both);
 * other counts, and a last odd channel with them, take FILTER_ANY. */
FILTER_FIXED(2, 2) FILTER_FIXED(4, 2) FILTER_FIXED(6, 2)
FILTER_ANY(1) FILTER_ANY(2)

/* One channel: the state as named variables, which the compiler keeps in registers (it leaves a
 * one-channel state array in memory, and the loop then waits on its stores and loads). */
#define REPEAT2(M) M(0) M(1)
#define REPEAT4(M) REPEAT2(M) M(2) M(3)
#define REPEAT6(M) REPEAT4(M) M(4) M(5)
#define MONO_LOAD(s) double z0_##s = state[2 * stride * (s) + first], z1_##s = state[2 * stride * (s) + stride + first];
#define MONO_STORE(s) state[2 * stride * (s) + first] = z0_##s; state[2 * stride * (s) + stride + first] = z1_##s;
#define MONO_SECTION(s)                                                                               \
    {                                                                                                 \
        const double *c = sos + 6 * (s);                                                              \
        double x_new = c[0] * x + z0_##s;                                                             \
        z0_##s = c[1] * x - c[4] * x_new + z1_##s;                                                    \
        z1_##s = c[2] * x - c[5] * x_new;                                                             \
        x = x_new;                                                                                    \
    }

#define FILTER_MONO(S)                                                                                \
    static void filter_##S##_1(const double *sos, Py_ssize_t sections, double *state, const float *in, \
                               float *out, double *power, const double *weights, Py_ssize_t frames,   \
                               Py_ssize_t stride, Py_ssize_t first)                                   \
    {                                                                                                 \
        (void)sections;                                                                               \
        REPEAT##S(MONO_LOAD)                                                                          \
        for (Py_ssize_t n = 0; n < frames; n++) {                                                     \
            double x = in[n * stride + first];                                                        \
            REPEAT##S(MONO_SECTION)                                                                   \
            if (out) out[n * stride + first] = (float)x;                                              \
            if (power) power[n] = first ? power[n] + x * x * weights[first] : x * x * weights[first]; \
        }                                                                                             \
        REPEAT##S(MONO_STORE)                                                                         \
    }

FILTER_MONO(2) FILTER_MONO(4) FILTER_MONO(6)

static group_filter group_filter_for(Py_ssize_t sections, Py_ssize_t channels)
{
    switch (sections) {
    case 2: return channels == 2 ? filter_2_2 : filter_2_1;
    case 4: return channels == 2 ? filter_4_2 : filter_4_1;
    case 6: return channels == 2 ? filter_6_2 : filter_6_1;
    default: return channels == 2 ? filter_any_2 : filter_any_1;
    }
}

static int get(PyObject *obj, Py_buffer *view, int writable)
{
    return PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0));
}

/* filter(sos, state, frames_in, frames_out, power, weights, channels)
 * sos: float64 [sections * 6]; state: float64 [sections * 2 * channels], updated;
 * frames_in: float32 [frames * channels]; frames_out: float32, the same length, or None (may be
 * frames_in itself); power: float64 [frames] or None, sum over channels of weight * y ** 2;
 * weights: float64 [channels] (read when power is given). */
static PyObject *filter(PyObject *self, PyObject *args)
{
    PyObject *sos_o, *state_o, *in_o, *out_o, *power_o, *weights_o;
    Py_ssize_t channels;
    if (!PyArg_ParseTuple(args, "OOOOOOn", &sos_o, &state_o, &in_o, &out_o, &power_o, &weights_o, &channels))
        return NULL;
    if (channels < 1) {
        PyErr_Format(PyExc_ValueError, "channels must be at least 1, not %zd", channels);
        return NULL;
    }
    Py_buffer sos = {0}, state = {0}, in = {0}, out = {0}, power = {0}, weights = {0};
    PyObject *result = NULL;
    if (get(sos_o, &sos, 0) || get(state_o, &state, 1) || get(in_o, &in, 0)
        || (out_o != Py_None && get(out_o, &out, 1)) || (power_o != Py_None && get(power_o, &power, 1))
        || (power_o != Py_None && get(weights_o, &weights, 0)))
        goto done;
    Py_ssize_t sections = sos.len / (6 * (Py_ssize_t)sizeof(double));
    if (sections < 1 || sections > MAX_SECTIONS) {
        PyErr_Format(PyExc_ValueError, "1 to %d sections, not %zd", MAX_SECTIONS, sections);
        goto done;
    }
    Py_ssize_t frames = in.len / (channels * (Py_ssize_t)sizeof(float));
    if (channels > PY_SSIZE_T_MAX / (2 * MAX_SECTIONS * (Py_ssize_t)sizeof(double))  /* no product below overflows */
        || state.len != sections * 2 * channels * (Py_ssize_t)sizeof(double)
        || (out.buf && out.len != in.len) || (power.buf && power.len != frames * (Py_ssize_t)sizeof(double))
        || (power.buf && weights.len != channels * (Py_ssize_t)sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the sections, frames and channels");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t first = 0; first < channels; first += 2)  /* channels in pairs, the last alone */
        group_filter_for(sections, channels - first >= 2 ? 2 : 1)(
            sos.buf, sections, state.buf, in.buf, out.buf, power.buf, weights.buf, frames, channels, first);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&sos);
    PyBuffer_Release(&state);
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    PyBuffer_Release(&power);
    PyBuffer_Release(&weights);
    return result;
}

static PyMethodDef methods[] = {
    {"filter", filter, METH_VARARGS,
     "filter(sos, state, frames_in, frames_out, power, weights, channels): see audionorm_lab.dsp.sections."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sections", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sections(void) { return PyModule_Create(&module); }
