/* The noise gate's element-wise work on STFT spectra, in one pass each, without the GIL.
 *
 * With the Python side (audionorm_lab.dsp.gate_kernels), each gives bit for bit what the numpy
 * expressions it replaces give (noted at each), compiled without contraction into FMA
 * (-ffp-contract=off); tests/test_gate_kernels.py checks it. Magnitudes are never computed here:
 * numpy's np.abs has its own algorithm (and a fused multiply-add on some CPUs), so where a
 * squared magnitude cannot decide a comparison beyond doubt, the caller asks np.abs. What changes
 * is the memory traffic: numpy made a temporary array per step (magnitudes, mask, two triangle
 * sums of a dozen shifted additions each, gains); here each spectrum is read once or twice. The
 * Python side checks every buffer's type and shape; this file trusts them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Whether a buffer of `len` bytes holds a [a][b] array of `item`-byte elements: a, b not negative and the product
 * computed without overflow (a product past PY_SSIZE_T_MAX never matches a buffer). */
static int holds(Py_ssize_t len, Py_ssize_t a, Py_ssize_t b, Py_ssize_t item)
{
    if (a < 0 || b < 0 || item < 1) return 0;
    if (b != 0 && a > PY_SSIZE_T_MAX / b) return 0;
    Py_ssize_t elements = a * b;
    if (elements > PY_SSIZE_T_MAX / item) return 0;
    return len == elements * item;
}

/* The triangle 1, 2, .., width, .., 2, 1 is a running sum of `width` taken twice (stages._triangle_sum); centred,
 * zeros beyond the ends. Integer sums: exact in any order.
 *
 * Along the bins of each row of `x` ([frames][bins]): `pad` holds 2 * bins + 3 * width. */
static void triangle_bins(int32_t *x, Py_ssize_t frames, Py_ssize_t bins, int width, int32_t *pad)
{
    if (width == 1) return;
    Py_ssize_t edge = width - 1, boxes = bins + edge;
    int32_t *box = pad + bins + 2 * edge;  /* box[k] = x[k - edge .. k] */
    for (Py_ssize_t f = 0; f < frames; f++) {
        int32_t *row = x + f * bins;
        memset(pad, 0, sizeof(int32_t) * (size_t)edge);
        memcpy(pad + edge, row, sizeof(int32_t) * (size_t)bins);
        memset(pad + edge + bins, 0, sizeof(int32_t) * (size_t)edge);
        int32_t sum = 0;
        for (Py_ssize_t j = 0; j < width; j++) sum += pad[j];
        box[0] = sum;
        for (Py_ssize_t k = 1; k < boxes; k++) box[k] = box[k - 1] + pad[k + edge] - pad[k - 1];
        sum = 0;
        for (Py_ssize_t j = 0; j < width; j++) sum += box[j];
        row[0] = sum;
        for (Py_ssize_t b = 1; b < bins; b++) row[b] = row[b - 1] + box[b + edge] - box[b - 1];
    }
}

/* Along the frames, for every bin at once: whole rows added and taken away, so the memory is read in order and
 * the loops over the bins vectorize. `box` holds (frames + width - 1) rows. */
static void triangle_frames(int32_t *x, Py_ssize_t frames, Py_ssize_t bins, int width, int32_t *box)
{
    if (width == 1) return;
    Py_ssize_t edge = width - 1;
    for (Py_ssize_t k = 0; k < frames + edge; k++) {  /* box[k] = x[k - edge .. k] */
        int32_t *to = box + k * bins;
        if (k == 0) memset(to, 0, sizeof(int32_t) * (size_t)bins);
        else memcpy(to, to - bins, sizeof(int32_t) * (size_t)bins);
        if (k < frames) {
            const int32_t *add = x + k * bins;
            for (Py_ssize_t b = 0; b < bins; b++) to[b] += add[b];
        }
        if (k - width >= 0) {
            const int32_t *drop = x + (k - width) * bins;
            for (Py_ssize_t b = 0; b < bins; b++) to[b] -= drop[b];
        }
    }
    for (Py_ssize_t f = 0; f < frames; f++) {  /* x[f] = box[f .. f + edge] */
        int32_t *to = x + f * bins;
        if (f == 0) {
            memset(to, 0, sizeof(int32_t) * (size_t)bins);
            for (Py_ssize_t j = 0; j < width; j++)
                for (Py_ssize_t b = 0; b < bins; b++) to[b] += box[j * bins + b];
        } else {
            const int32_t *before = to - bins, *add = box + (f + edge) * bins, *drop = box + (f - 1) * bins;
            for (Py_ssize_t b = 0; b < bins; b++) to[b] = before[b] + add[b] - drop[b];
        }
    }
}

/* A bound past which the squared magnitude re*re + im*im (a few ulps from |x|^2) decides |x| against t
 * as numpy's np.abs (a few ulps from |x|) would: outside a relative band of 1e-12 around t^2. Inside
 * it, or where squares underflow (t under 1e-150), the decision is left to numpy itself. */
#define BAND 1e-12
#define AMBIGUOUS 2

/* mask(spectrum, thresholds, open_bins, mask_out, frames, bins) -> the number of ambiguous bins
 * mask_out: uint8 [frames][bins]: 1 where |x| > thresholds[bin] or the bin is open, 0 where not, and
 * AMBIGUOUS where the squared magnitude cannot tell (the caller decides those with np.abs). */
static PyObject *mask(PyObject *self, PyObject *args)
{
    PyObject *spectrum_o, *thresholds_o, *open_o, *mask_o;
    Py_ssize_t frames, bins;
    if (!PyArg_ParseTuple(args, "OOOOnn", &spectrum_o, &thresholds_o, &open_o, &mask_o, &frames, &bins))
        return NULL;
    Py_buffer spectrum = {0}, thresholds = {0}, open = {0}, out = {0};
    PyObject *result = NULL;
    double *low = NULL, *high = NULL;
    if (PyObject_GetBuffer(spectrum_o, &spectrum, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(thresholds_o, &thresholds, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(open_o, &open, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(mask_o, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE))
        goto done;
    if (!holds(spectrum.len, frames, bins, 2 * sizeof(double)) || !holds(thresholds.len, bins, 1, sizeof(double))
        || !holds(open.len, bins, 1, 1) || !holds(out.len, frames, bins, 1)) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the frames and bins");
        goto done;
    }
    low = malloc(sizeof(double) * (size_t)bins);
    high = malloc(sizeof(double) * (size_t)bins);
    if (!low || !high) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t ambiguous = 0;
    Py_BEGIN_ALLOW_THREADS
    const double *s = spectrum.buf, *t = thresholds.buf;
    const uint8_t *opened = open.buf;
    uint8_t *m = out.buf;
    /* per bin: below `low` no, above `high` yes; low = high = NAN: always ambiguous; t < 0: always yes */
    for (Py_ssize_t b = 0; b < bins; b++) {
        if (opened[b] || t[b] < 0.0) {
            low[b] = -1.0;
            high[b] = -1.0;
        } else if (t[b] > 1e-150) {
            low[b] = t[b] * t[b] * (1.0 - BAND);
            high[b] = t[b] * t[b] * (1.0 + BAND);
        } else {
            low[b] = high[b] = NAN;
        }
    }
    for (Py_ssize_t f = 0; f < frames; f++) {
        Py_ssize_t unsure = 0;
        const double *row = s + 2 * f * bins;
        uint8_t *to = m + f * bins;
        for (Py_ssize_t b = 0; b < bins; b++) {  /* no branches: the loop vectorizes */
            double q = row[2 * b] * row[2 * b] + row[2 * b + 1] * row[2 * b + 1];
            int yes = q > high[b], neither = !(q > high[b]) & !(q < low[b]);
            to[b] = (uint8_t)(yes | (neither << 1));
            unsure += neither;
        }
        ambiguous += unsure;
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(ambiguous);
done:
    free(low);
    free(high);
    PyBuffer_Release(&spectrum);
    PyBuffer_Release(&thresholds);
    PyBuffer_Release(&open);
    PyBuffer_Release(&out);
    return result;
}

/* The largest count the smoothing reaches, freq_width^2 * time_width^2 (an all-ones mask), and so the size of the
 * gains table: at most 2^24 (a 128 MB table; the gate's widths give a few thousand), computed in 64 bits. Wider
 * smoothing runs the numpy path (gate_kernels.compiled_smoothing says the same). */
#define MAX_COUNT (1 << 24)

/* Smooth the 0/1 mask's counts and multiply each bin by its gain; 0 where a mask value is neither 0 nor 1 (nothing
 * changed), 1 when done. No Python calls: runs without the GIL. */
static int smooth_rows(double *s, const uint8_t *m, uint8_t *alive, int32_t *counts, int32_t *tmp, int32_t *rows,
                       double *gains, Py_ssize_t frames, Py_ssize_t bins, int freq_width, int time_width,
                       int32_t most, double norm)
{
    uint8_t other = 0;
    for (Py_ssize_t i = 0; i < frames * bins; i++) {
        counts[i] = m[i];
        other |= m[i] & (uint8_t)~1u;
    }
    if (other) return 0;  /* an undecided bin (AMBIGUOUS) or garbage: a count past the table */
    triangle_bins(counts, frames, bins, freq_width, tmp);
    triangle_frames(counts, frames, bins, time_width, rows);
    for (int32_t c = 0; c <= most; c++) gains[c] = (double)c / norm;  /* numpy's counts / norm, each the same */
    for (Py_ssize_t f = 0; f < frames; f++) {
        int32_t any = 0;
        double *row = s + 2 * f * bins;
        const int32_t *count = counts + f * bins;
        for (Py_ssize_t b = 0; b < bins; b++) {
            double g = gains[count[b]], re = row[2 * b], im = row[2 * b + 1];
            row[2 * b] = re * g - im * 0.0;  /* numpy's complex multiply by (g + 0j) */
            row[2 * b + 1] = re * 0.0 + im * g;
            any |= count[b];
        }
        alive[f] = any != 0;
    }
    return 1;
}

/* smooth_and_apply(spectrum, mask, freq_width, time_width, norm, live, frames, bins)
 * spectrum: complex128 [frames][bins], multiplied in place by its gains; mask: uint8 [frames][bins], each 0 or 1
 * (anything else is refused: decide AMBIGUOUS bins first); live: uint8 [frames], set to whether any of the frame's
 * gains is not zero. Widths from 1 to 256 with freq_width^2 * time_width^2 at most MAX_COUNT.
 * numpy: spectrum *= smooth_mask(mask, freq_width, time_width) / norm */
static PyObject *smooth_and_apply(PyObject *self, PyObject *args)
{
    PyObject *spectrum_o, *mask_o, *live_o;
    double norm;
    int freq_width, time_width;
    Py_ssize_t frames, bins;
    if (!PyArg_ParseTuple(args, "OOiidOnn", &spectrum_o, &mask_o, &freq_width, &time_width, &norm, &live_o,
                          &frames, &bins))
        return NULL;
    if (freq_width < 1 || time_width < 1 || freq_width > 256 || time_width > 256
        || (int64_t)freq_width * freq_width * time_width * time_width > MAX_COUNT) {
        PyErr_Format(PyExc_ValueError, "smoothing widths %d x %d are outside what this kernel takes (1 to 256, "
                     "squares' product at most %d)", freq_width, time_width, MAX_COUNT);
        return NULL;
    }
    int32_t most = (int32_t)((int64_t)freq_width * freq_width * time_width * time_width);
    Py_buffer spectrum = {0}, mask_b = {0}, live = {0};
    PyObject *result = NULL;
    int32_t *counts = NULL, *tmp = NULL, *rows = NULL;
    double *gains = NULL;
    if (PyObject_GetBuffer(spectrum_o, &spectrum, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
        || PyObject_GetBuffer(mask_o, &mask_b, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(live_o, &live, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE))
        goto done;
    if (!holds(spectrum.len, frames, bins, 2 * sizeof(double)) || !holds(mask_b.len, frames, bins, 1)
        || !holds(live.len, frames, 1, 1) || frames > PY_SSIZE_T_MAX / 4 / (bins > 0 ? bins : 1) - time_width) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the frames and bins");
        goto done;
    }
    counts = malloc(sizeof(int32_t) * (size_t)(frames * bins > 0 ? frames * bins : 1));
    tmp = malloc(sizeof(int32_t) * (size_t)(2 * bins + 3 * freq_width));
    rows = malloc(sizeof(int32_t) * (size_t)((frames + time_width) * bins + 1));
    gains = malloc(sizeof(double) * (size_t)(most + 1));
    if (!counts || !tmp || !rows || !gains) {
        PyErr_NoMemory();
        goto done;
    }
    int done_ok;
    Py_BEGIN_ALLOW_THREADS
    done_ok = smooth_rows(spectrum.buf, mask_b.buf, live.buf, counts, tmp, rows, gains, frames, bins, freq_width,
                          time_width, most, norm);
    Py_END_ALLOW_THREADS
    if (!done_ok) {
        PyErr_SetString(PyExc_ValueError, "the mask holds a value other than 0 or 1 (an undecided bin?)");
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(counts);
    free(tmp);
    free(rows);
    free(gains);
    PyBuffer_Release(&spectrum);
    PyBuffer_Release(&mask_b);
    PyBuffer_Release(&live);
    return result;
}

/* overlap_add(frames, synthesis, out, first, rows_of)
 * frames: float64 [k][n_fft], a batch of inverse transforms; synthesis: float64 [n_fft]; out: float64
 * [rows][hop] with n_fft = overlap * hop; rows_of: int64 [k], the row of out each frame starts at.
 * numpy, for a batch whose frames are consecutive from `first`:
 *     frames = frames.reshape(-1, overlap, hop); frames *= synthesis.reshape(overlap, hop)
 *     for part in range(overlap): out[first + part: first + part + k] += frames[:, part]
 * (each product rounded, then added, in that order of parts; frames left out contribute zeros). */
static PyObject *overlap_add(PyObject *self, PyObject *args)
{
    PyObject *frames_o, *synthesis_o, *out_o, *rows_o;
    Py_ssize_t k, n_fft, hop, rows;
    if (!PyArg_ParseTuple(args, "OOOOnnnn", &frames_o, &synthesis_o, &out_o, &rows_o, &k, &n_fft, &hop, &rows))
        return NULL;
    Py_buffer frames = {0}, synthesis = {0}, out = {0}, starts = {0};
    PyObject *result = NULL;
    if (PyObject_GetBuffer(frames_o, &frames, PyBUF_C_CONTIGUOUS) || PyObject_GetBuffer(synthesis_o, &synthesis,
                                                                                       PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(out_o, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE)
        || PyObject_GetBuffer(rows_o, &starts, PyBUF_C_CONTIGUOUS))
        goto done;
    Py_ssize_t overlap = hop > 0 ? n_fft / hop : 0;
    if (hop < 1 || overlap * hop != n_fft || !holds(frames.len, k, n_fft, sizeof(double))
        || !holds(synthesis.len, n_fft, 1, sizeof(double)) || !holds(out.len, rows, hop, sizeof(double))
        || !holds(starts.len, k, 1, sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the frames, hop and rows");
        goto done;
    }
    const int64_t *row_of = starts.buf;
    for (Py_ssize_t i = 0; i < k; i++)
        if (row_of[i] < 0 || row_of[i] > rows - overlap) {
            PyErr_SetString(PyExc_ValueError, "a frame starts outside the output");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    const double *in = frames.buf, *w = synthesis.buf;
    double *o = out.buf;
    for (Py_ssize_t part = 0; part < overlap; part++)
        for (Py_ssize_t i = 0; i < k; i++) {
            const double *src = in + i * n_fft + part * hop, *wp = w + part * hop;
            double *dst = o + (row_of[i] + part) * hop;
            for (Py_ssize_t j = 0; j < hop; j++) {
                double product = src[j] * wp[j];
                dst[j] = dst[j] + product;
            }
        }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&frames);
    PyBuffer_Release(&synthesis);
    PyBuffer_Release(&out);
    PyBuffer_Release(&starts);
    return result;
}

/* column_candidates(spectrum, peaks, candidates, frames, bins) -> how many candidates
 * For each bin, the frames whose magnitude may be the largest of the bin's and above peaks[bin]: those whose
 * squared magnitude is within BAND of the bin's largest (none when even that is below peaks[bin]^2 by BAND;
 * every frame when the squares underflow). candidates: int64 [frames * bins], filled with flat indices. The
 * caller takes np.abs of those alone: np.maximum(peaks, np.abs(spectrum).max(axis=0)) exactly. */
static PyObject *column_candidates(PyObject *self, PyObject *args)
{
    PyObject *spectrum_o, *peaks_o, *candidates_o;
    Py_ssize_t frames, bins;
    if (!PyArg_ParseTuple(args, "OOOnn", &spectrum_o, &peaks_o, &candidates_o, &frames, &bins))
        return NULL;
    Py_buffer spectrum = {0}, peaks = {0}, candidates = {0};
    PyObject *result = NULL;
    double *largest = NULL;
    if (PyObject_GetBuffer(spectrum_o, &spectrum, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(peaks_o, &peaks, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(candidates_o, &candidates, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE))
        goto done;
    if (!holds(spectrum.len, frames, bins, 2 * sizeof(double)) || !holds(peaks.len, bins, 1, sizeof(double))
        || !holds(candidates.len, frames, bins, sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the frames and bins");
        goto done;
    }
    largest = calloc((size_t)(bins > 0 ? bins : 1), sizeof(double));
    if (!largest) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    const double *s = spectrum.buf, *peak = peaks.buf;
    int64_t *index = candidates.buf;
    for (Py_ssize_t f = 0; f < frames; f++)
        for (Py_ssize_t b = 0; b < bins; b++) {
            const double *x = s + 2 * (f * bins + b);
            double q = x[0] * x[0] + x[1] * x[1];
            if (q > largest[b]) largest[b] = q;
        }
    for (Py_ssize_t b = 0; b < bins; b++) {
        int underflow = largest[b] < 1e-290 || peak[b] < 1e-145;
        if (!underflow && largest[b] < peak[b] * peak[b] * (1.0 - BAND)) continue;  /* cannot raise the peak */
        double floor = underflow ? -1.0 : largest[b] * (1.0 - BAND);
        for (Py_ssize_t f = 0; f < frames; f++) {
            const double *x = s + 2 * (f * bins + b);
            if (x[0] * x[0] + x[1] * x[1] >= floor) index[count++] = f * bins + b;
        }
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(count);
done:
    free(largest);
    PyBuffer_Release(&spectrum);
    PyBuffer_Release(&peaks);
    PyBuffer_Release(&candidates);
    return result;
}

/* decide_bins(spectrum, closed_below, open_above, error, peaks, frames, bins) -> bins left in doubt
 * spectrum: complex64 [frames][bins], single-precision spectra of real frames (bins = n_fft / 2 + 1), each bin within
 * error * (the frame's whole-spectrum L2 norm) + TINY of the double-precision magnitude; closed_below, open_above:
 * float64 [bins], the peak levels below which a bin surely stays closed and above which it surely opens; peaks:
 * float64 [bins], raised in place to open_above[b] where some frame's magnitude is beyond doubt above it.
 * Returns how many bins, not (now or before) at open_above, have a frame whose magnitude may lie above closed_below
 * (or a frame that is not finite): for those the caller takes the block's exact peaks.
 * Squared magnitudes are compared, in double precision (a float's square is exact there). */
#define TINY 1e-30
static PyObject *decide_bins(PyObject *self, PyObject *args)
{
    PyObject *spectrum_o, *below_o, *above_o, *peaks_o;
    double error;
    Py_ssize_t frames, bins;
    if (!PyArg_ParseTuple(args, "OOOdOnn", &spectrum_o, &below_o, &above_o, &error, &peaks_o, &frames, &bins))
        return NULL;
    Py_buffer spectrum = {0}, below = {0}, above = {0}, peaks = {0};
    PyObject *result = NULL;
    double *squares = NULL, *opened = NULL, *doubt = NULL;  /* per bin, the largest excess over each level */
    if (PyObject_GetBuffer(spectrum_o, &spectrum, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(below_o, &below, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(above_o, &above, PyBUF_C_CONTIGUOUS)
        || PyObject_GetBuffer(peaks_o, &peaks, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE))
        goto done;
    if (bins < 2 || !holds(spectrum.len, frames, bins, 2 * sizeof(float)) || !holds(below.len, bins, 1, sizeof(double))
        || !holds(above.len, bins, 1, sizeof(double)) || !holds(peaks.len, bins, 1, sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "buffer sizes do not match the frames and bins");
        goto done;
    }
    squares = malloc(sizeof(double) * (size_t)bins);
    opened = malloc(sizeof(double) * (size_t)bins);
    doubt = malloc(sizeof(double) * (size_t)bins);
    if (!squares || !opened || !doubt) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t left = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < bins; b++) opened[b] = doubt[b] = -INFINITY;
    const float *s = spectrum.buf;
    const double *low = below.buf, *high = above.buf;
    double *peak = peaks.buf;
    for (Py_ssize_t f = 0; f < frames; f++) {
        const float *row = s + 2 * f * bins;
        double part[4] = {0.0, 0.0, 0.0, 0.0};  /* four running sums: the loop vectorizes (the order does not matter) */
        Py_ssize_t b = 0;
        for (; b + 4 <= bins; b += 4)
            for (int j = 0; j < 4; j++) {
                double re = row[2 * (b + j)], im = row[2 * (b + j) + 1];
                squares[b + j] = re * re + im * im;
                part[j] += squares[b + j];
            }
        for (; b < bins; b++) {
            double re = row[2 * b], im = row[2 * b + 1];
            squares[b] = re * re + im * im;
            part[0] += squares[b];
        }
        /* Parseval over the whole spectrum: the bins between DC and Nyquist stand for two each */
        double energy = 2.0 * (part[0] + part[1] + part[2] + part[3]) - squares[0] - squares[bins - 1];
        if (!isfinite(energy)) {  /* NaN or an overflow in single precision: nothing is beyond doubt */
            for (b = 0; b < bins; b++) doubt[b] = INFINITY;
            continue;
        }
        double delta = error * sqrt(energy) + TINY;
        for (b = 0; b < bins; b++) {  /* no branches: the loop vectorizes */
            double up = high[b] + delta, down = low[b] - delta;
            double surely_below = down > 0.0 ? down * down : -1.0;  /* -1: no square is surely below it */
            double over_up = squares[b] - up * up, over_down = squares[b] - surely_below;
            opened[b] = over_up > opened[b] ? over_up : opened[b];
            doubt[b] = over_down > doubt[b] ? over_down : doubt[b];
        }
    }
    for (Py_ssize_t b = 0; b < bins; b++) {  /* opened: a square reached (high + delta)^2; doubt: one passed the other */
        if (opened[b] >= 0.0 && !(peak[b] >= high[b])) peak[b] = high[b];
        left += doubt[b] > 0.0 && !(peak[b] >= high[b]);
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(left);
done:
    free(squares);
    free(opened);
    free(doubt);
    PyBuffer_Release(&spectrum);
    PyBuffer_Release(&below);
    PyBuffer_Release(&above);
    PyBuffer_Release(&peaks);
    return result;
}

static PyMethodDef methods[] = {
    {"mask", mask, METH_VARARGS, "mask(spectrum, thresholds, open_bins, mask_out, frames, bins)"},
    {"smooth_and_apply", smooth_and_apply, METH_VARARGS,
     "smooth_and_apply(spectrum, mask, freq_width, time_width, norm, live, frames, bins)"},
    {"overlap_add", overlap_add, METH_VARARGS, "overlap_add(frames, synthesis, out, rows_of, k, n_fft, hop, rows)"},
    {"column_candidates", column_candidates, METH_VARARGS, "column_candidates(spectrum, peaks, out, frames, bins)"},
    {"decide_bins", decide_bins, METH_VARARGS,
     "decide_bins(spectrum, closed_below, open_above, error, peaks, frames, bins)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gate", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gate(void) { return PyModule_Create(&module); }
