#!/usr/bin/env bash
# audionorm-lab on aarch64, for real, on an x86-64 Debian machine (as root): Debian's arm64 Python run by
# qemu-user-static, PyPI's aarch64 wheels, the extensions built by Debian's aarch64 cross compilers, then
#   - the kernel tests (frame transforms, sections, gate kernels; each compiled kernel and the numpy path),
#   - a 20-second normalize in float and service mode, compiled kernels against the numpy path, compared bit for bit
#     (bench/platforms/wheel_smoke.py, which wheels run too).
#
#   ./lab aarch64 [WORKDIR], or bench/platforms/aarch64.sh [WORKDIR]      (default /tmp/audionorm-aarch64; reused when it is there)
#
# Slow (emulated): about ten minutes the first time here, most of it pip and the tests under qemu.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
WORK=${1:-/tmp/audionorm-aarch64}
SYSROOT=$WORK/sysroot
say() { printf 'aarch64: %s\n' "$*" >&2; }
started=$SECONDS

# 1. the tools: qemu and the cross compilers (Debian)
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. Debian's arm64 Python, unpacked into a sysroot (no dpkg install: nothing of the host changes but apt's lists)
PACKAGES=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev libpython3.11 libc6 libc6-dev
          zlib1g libbz2-1.0 libcrypt1 libdb5.3 libexpat1 libffi8 liblzma5 libncursesw6 libnsl2 libreadline8
          libsqlite3-0 libssl3 libtinfo6 libtirpc3 libuuid1 libgcc-s1 libstdc++6 libgfortran5 libgomp1
          linux-libc-dev libcrypt-dev libnsl-dev libtirpc-dev)
if [ ! -x "$SYSROOT/usr/bin/python3.11" ]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    say "apt-get update (arm64 lists)"
    apt-get update -qq >/dev/null
    mkdir -p "$WORK/debs" "$SYSROOT"
    (cd "$WORK/debs" && apt-get download -qq "${PACKAGES[@]/%/:arm64}" python3-pip-whl python3-setuptools-whl)
    for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
fi
PY=(qemu-aarch64-static -L "$SYSROOT" "$SYSROOT/usr/bin/python3.11")
say "$("${PY[@]}" -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])')"

# 3. a venv with PyPI's aarch64 wheels (pip bootstrapped from Debian's wheel)
VENV=$WORK/venv
VPY=(qemu-aarch64-static -L "$SYSROOT" "$VENV/bin/python")
if [ ! -x "$VENV/bin/python" ]; then
    "${PY[@]}" -m venv --without-pip "$VENV"
    PIPWHL=$(ls "$SYSROOT"/usr/share/python-wheels/pip-*.whl)
    say "installing numpy, scipy, soundfile, pydub, noisereduce, pytest (aarch64 wheels)"
    "${VPY[@]}" "$PIPWHL/pip" install -q --disable-pip-version-check "$PIPWHL" >/dev/null
    "${VPY[@]}" -m pip install -q --disable-pip-version-check --only-binary=:all: \
        "numpy>=2.0" scipy soundfile pydub "noisereduce>=3.0" tqdm pytest "setuptools>=77"
fi

# 4. the extensions, built by the cross compilers, called from the emulated Python (pip's isolated build cannot
#    run an aarch64 interpreter here: no binfmt_misc); in a copy of the checkout, so the x86-64 build stays
SRC=$WORK/src
rm -rf "$SRC" && mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$SRC"
INCLUDE="-I$SYSROOT/usr/include -I$SYSROOT/usr/include/python3.11 -I$SYSROOT/usr/include/aarch64-linux-gnu"
say "building the extensions with aarch64-linux-gnu-gcc/g++"
build_started=$SECONDS
(cd "$SRC" && CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LDSHARED="aarch64-linux-gnu-gcc -shared" \
    LDCXXSHARED="aarch64-linux-gnu-g++ -shared" CFLAGS="$INCLUDE" CPPFLAGS="$INCLUDE" \
    "${VPY[@]}" setup.py -q build_ext --inplace 2>&1 | grep -v -i "warning\|^$\|\*\*\*\*\|!!" >&2 || true)
ls "$SRC"/audionorm_lab/dsp/*.so >&2
built=$(ls "$SRC"/audionorm_lab/dsp/*aarch64*.so | wc -l)
[ "$built" -eq 3 ] || { say "expected 3 extensions (_sections, _gate, _fft; no AVX2 build here), built $built"; exit 1; }
say "built in $((SECONDS - build_started)) s: $(cd "$SRC" && "${VPY[@]}" -c 'from audionorm_lab.dsp import kernels; print(kernels.describe())')"

# 5. the kernel tests, each compiled kernel and the numpy path
say "kernel tests under qemu"
(cd "$SRC" && "${VPY[@]}" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_frame_fft.py tests/test_sections.py \
    tests/test_gate_kernels.py -k "not streaming_path_never_imports and not imports_no_scipy" 2>&1 | tail -3)
# (those two run a fresh interpreter from sys.executable, which the host cannot exec without binfmt_misc)

# 6. a 20-second normalize, float and service mode, compiled against the numpy path: the same bits (each normalize
#    started through qemu explicitly: the host cannot exec the emulated interpreter without binfmt_misc)
say "a 20-second normalize, float and service mode, both ways"
(cd "$SRC" && "${VPY[@]}" bench/platforms/wheel_smoke.py --seconds 20 --modes float,service --python "${VPY[*]}")
say "done in $((SECONDS - started)) s"
