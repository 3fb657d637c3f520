/* _fft.cpp built as audionorm_lab.dsp._fft_avx2, with -mavx2 (setup.py): four frames per transform, not two. */
#define MODULE_NAME _fft_avx2
#include "_fft.cpp"
