"""Hostile uploads (data/hostile.py, made here): a worker reads only the file it was given, in bounded memory,
within the limits it was set; every refusal is one line, and nothing is left behind."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audionorm_lab import NormalizeOptions, normalize_array, normalize_file, probe
from audionorm_lab.service.admission import Limits, admit
from audionorm_lab.errors import NotAudioError, OutputPathError, PathOutsideRootError, TooLongError, WidthError
from audionorm_lab.dsp.geometry import MAX_CHANNELS, capped_frames, check_width
from bench.measuring.hostile import run_one
from bench.measuring.measure import IMPORT_FLOOR_COMMAND, run_measured
from bench.cluster.service_repro import Service
from data.hostile import make_corpus, mark_unread, secret_of, tone, was_read

#: The memory bound: peak RSS of the process tree at most this far above the import floor, bytes.
BOUND_ABOVE_FLOOR = 100 * 10**6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def floor():
    return run_measured(IMPORT_FLOOR_COMMAND).peak_rss_bytes


def test_every_hostile_file_is_refused_in_one_line_or_processed_within_the_bound(corpus, floor, tmp_path):
    # the README's list: playlists and indirections (HLS, ffconcat, PLS, SDP, image patterns) among them
    assert {"playlist.m3u8", "concat.mp3", "playlist.pls", "session.sdp", "frame-%03d.png"} <= {f.name for f in corpus}
    out = tmp_path / "out"
    out.mkdir()
    for file in corpus:
        row = run_one(file, "streaming", out, 2 * 10**9, floor)
        assert not row["read_another_file"], row
        assert row["leftovers"] == [] and list(out.iterdir()) == [], row
        if row["exit_code"] == 0:
            assert file.expect in ("processed", "either") and row["output_frames"] > 0, row
            assert row["stderr_lines"] == 0, row
        else:
            assert file.expect in ("refused", "either") and row["exit_code"] == 2, row
            assert row["stderr_lines"] == 1 and row["stderr_last"].startswith("audionorm-lab: error: "), row
            assert row["output_frames"] is None, row
        assert row["above_floor_bytes"] <= BOUND_ABOVE_FLOOR, row


def test_the_service_as_it_was_reads_another_tenants_file_through_a_playlist(corpus, floor, tmp_path):
    """The evidence: --strategy full-load (pydub, as the service did) follows the playlist."""
    playlist = next(f for f in corpus if f.name == "playlist.mp3")
    row = run_one(playlist, "full-load", tmp_path, 2 * 10**9, floor)
    assert row["exit_code"] == 0 and row["read_another_file"], row
    assert row["output_frames"] == pytest.approx(3 * 44100, rel=0.01), "the secret's 3 s, normalized"


@pytest.mark.parametrize("name", ["playlist.mp3", "playlist.m4a", "playlist.m3u8", "concat.mp3", "pls.mp3",
                                  "playlist.pls"])
def test_probing_a_playlist_reads_nothing_else(corpus, name):
    secret = secret_of(corpus[0].path.parent)
    unread = mark_unread(secret)
    with pytest.raises(NotAudioError, match="not audio: refused"):
        probe(corpus[0].path.parent / name)
    assert not was_read(secret, unread)


def test_a_playlist_behind_leading_bytes_is_still_refused_by_the_demuxer_whitelist(corpus, tmp_path):
    """The first-bytes check is for the message; ffprobe's whitelist is the guard: a playlist that does not start
    with #EXTM3U gets no further than the refused demuxer."""
    secret = secret_of(corpus[0].path.parent)
    sneaky = tmp_path / "sneaky.m3u8"
    sneaky.write_text(f"\n\n  #EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{secret}\n#EXT-X-ENDLIST\n")
    unread = mark_unread(secret)
    with pytest.raises(NotAudioError, match=r"playlist|hls"):
        probe(sneaky)
    assert not was_read(secret, unread)


def test_the_allowed_containers_still_decode(tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, tone(2.0, 44100, 2), 44100, subtype="PCM_16")
    for suffix, args in ((".m4a", ["-c:a", "aac"]), (".mkv", ["-c:a", "flac"]), (".opus", ["-c:a", "libopus"]),
                         (".aac", ["-c:a", "aac", "-f", "adts"]), (".mp4", ["-c:a", "aac"])):
        encoded = tmp_path / f"x{suffix}"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), *args, str(encoded)], check=True)
        info = probe(encoded)
        assert info.demuxer in ("mov", "matroska", "ogg", "aac") and info.channels == 2, (suffix, info)
        report = normalize_file(encoded, tmp_path / f"out{suffix}.wav")
        assert report.input_seconds == pytest.approx(2.0, abs=0.1)


def test_width_limits_refuse_before_decoding_in_one_line():
    with pytest.raises(WidthError, match=r"65 channels; this tool processes 1 to 64"):
        check_width("x.wav", MAX_CHANNELS + 1, 48000)
    with pytest.raises(WidthError, match=r"1,000,000 Hz"):
        check_width("x.wav", 2, 1_000_000)
    check_width("x.wav", 64, 384_000)


def test_chunks_are_capped_in_samples_and_never_below_the_gates_reach():
    assert capped_frames(5.0, 44100, 2, 256, 4096) == math.ceil(5 * 44100 / 256) * 256  # stereo: as before
    wide = capped_frames(5.0, 192000, 16, 256, 11264)
    assert wide * 16 <= 5 * 96000 + 16 * 256 and wide >= 11264
    assert capped_frames(0.01, 192000, 64, 256, 11264) == math.ceil(0.01 * 192000 / 256) * 256  # asked for less


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8, 16, 64])
def test_the_noise_clip_kept_as_a_mean_block_by_block_is_the_whole_clips_mean(channels):
    """The scan (PeakScan) keeps the noise clip as the mean of each frame's channels, block by block as it reads:
    the bits of noisereduce's mean over the whole clip, and only the head's frames."""
    from audionorm_lab.dsp.gate_grid import GateGrid, PeakScan

    x = np.random.default_rng(channels).standard_normal((70_000, channels)).astype(np.float32)
    position = 0

    def read(frames):
        nonlocal position
        block = x[position: position + min(frames, 999)]  # blocks that do not divide the head
        position += len(block)
        return block

    scan = PeakScan(read, channels, GateGrid.named("service", 256), 1024, head_frames=60_001,
                    block_frames=999).start()
    try:
        head = scan.head()
    finally:
        scan.close()
    assert head.dtype == np.float32 and head.shape == (60_001,)
    assert np.array_equal(head.view(np.uint32), x[:60_001].mean(axis=1).view(np.uint32))


def test_a_wide_file_gives_the_whole_file_output_in_capped_chunks():
    x = tone(3.0, 96000, 12)
    x[:, 5] *= 0.3
    whole, _ = normalize_array(x, 96000, chunk_seconds=math.inf)
    chunked, report = normalize_array(x, 96000, chunk_seconds=5.0)
    assert report.chunks > 1 and report.chunk_frames * 12 <= 5 * 96000 + 12 * 256
    assert np.array_equal(whole, chunked)


def test_a_decode_that_runs_past_its_declared_length_is_stopped_at_the_limit(tmp_path):
    """ADTS AAC has no length in it: ffprobe estimates 9.6 s from the first frames' bit rate; it holds 35 s."""
    parts = []
    for seconds, rate in ((5, "256k"), (30, "32k")):
        part = tmp_path / f"{seconds}.aac"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=f=300:d={seconds}",
                        "-ac", "2", "-c:a", "aac", "-b:a", rate, "-f", "adts", str(part)], check=True)
        parts.append(part.read_bytes())
    liar = tmp_path / "liar.aac"
    liar.write_bytes(b"".join(parts))
    assert probe(liar).duration_seconds < 20
    with pytest.raises(TooLongError, match=r"decoding passed the 20 s limit \(its header declared 9\.\d s\)"):
        normalize_file(liar, tmp_path / "out.wav", max_seconds=20)
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []
    with pytest.raises(TooLongError, match="decoding passed the 1 s limit"):
        normalize_array(tone(3.0, 8000, 1), 8000, max_seconds=1.0)


def test_the_cli_refuses_a_longer_input_by_its_header(tmp_path):
    wav = tmp_path / "ten.wav"
    sf.write(wav, tone(10.0, 16000, 1), 16000)
    done = subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(wav), str(tmp_path / "o.wav"),
                           "--max-seconds", "5"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"audionorm-lab: error: {wav}: 10.0 s long, over the 5 s limit"]


@pytest.fixture
def root(tmp_path):
    inside = tmp_path / "root"
    (inside / "tenant").mkdir(parents=True)
    sf.write(inside / "tenant" / "in.wav", tone(1.0, 16000, 1), 16000)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    sf.write(outside / "secret.wav", tone(1.0, 16000, 1), 16000)
    return inside, outside


def test_the_storage_root_confines_inputs_and_outputs_links_followed(root):
    inside, outside = root
    limits = Limits(storage_root=inside)
    job = admit(inside / "tenant" / "in.wav", inside / "tenant" / "out.wav", NormalizeOptions(), limits)
    assert job.input_file == (inside / "tenant" / "in.wav").resolve()
    (inside / "tenant" / "link.wav").symlink_to(outside / "secret.wav")
    (inside / "tenant" / "away").symlink_to(outside)
    (inside / "tenant" / "out-link.wav").symlink_to(outside / "written.wav")
    refused = [(outside / "secret.wav", inside / "tenant" / "o.wav"),
               (inside / "tenant" / "link.wav", inside / "tenant" / "o.wav"),
               (inside / "tenant" / ".." / ".." / "elsewhere" / "secret.wav", inside / "tenant" / "o.wav"),
               (inside / "tenant" / "in.wav", inside / "tenant" / "away" / "o.wav"),
               (inside / "tenant" / "in.wav", inside / "tenant" / "out-link.wav")]
    for src, dst in refused:
        with pytest.raises(PathOutsideRootError, match="outside the storage root"):
            admit(src, dst, NormalizeOptions(), limits)
    with pytest.raises(OutputPathError):
        admit(inside / "tenant" / "in.wav", inside / "tenant" / "in.wav", NormalizeOptions(), limits)
    assert not (outside / "written.wav").exists()


def test_the_service_refuses_a_width_its_memory_limit_cannot_hold(tmp_path):
    """The width decides, not the process's own memory: under one limit, set between what a mono 8 kHz file and a
    32-channel 192 kHz file need to stream beside this process, the narrow file is admitted and the wide refused."""
    from audionorm_lab.service.admission import resident_bytes
    from audionorm_lab.stream.pipeline import working_set_bytes

    wide, narrow = tmp_path / "wide.wav", tmp_path / "narrow.wav"
    sf.write(wide, np.tile(tone(3.0, 192000, 1), (1, 32)), 192000, subtype="PCM_16")
    sf.write(narrow, tone(3.0, 8000, 1), 8000, subtype="PCM_16")
    wide_needs, narrow_needs = (working_set_bytes(probe(p), NormalizeOptions()) for p in (wide, narrow))
    assert wide_needs - narrow_needs > 8 * 10**6, (wide_needs, narrow_needs)
    limits = Limits(memory_limit_bytes=resident_bytes() + (wide_needs + narrow_needs) // 2)
    assert admit(narrow, tmp_path / "out.wav", NormalizeOptions(), limits).info.channels == 1
    with pytest.raises(WidthError, match=r"32 channels at 192,000 Hz need about \d+ MB to stream beside"):
        admit(wide, tmp_path / "out.wav", NormalizeOptions(), limits)
    assert admit(wide, tmp_path / "out.wav", NormalizeOptions(), Limits(memory_limit_bytes=2 * 10**9)).info.channels == 32


@pytest.fixture(scope="module")
def guarded_service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guarded")
    root = folder / "storage"
    root.mkdir()
    env = {"AUDIONORM_STORAGE_ROOT": str(root), "AUDIONORM_MAX_SECONDS": "60", "AUDIONORM_MEMORY_LIMIT": "2G"}
    with Service(2 * 10**9, folder / "service", env=env) as running:
        yield running, root


EXPECTED_ERRORS = {"playlist.mp3": "NotAudioError", "playlist.m4a": "NotAudioError", "concat.mp3": "NotAudioError",
                   "image.mp3": "NotAudioError", "program.mp3": "NotAudioError", "declares-1-MHz.wav": "WidthError",
                   "declares-2^31-frames.wav": "TooLongError"}


@pytest.mark.parametrize("mode", ["full-load", "auto", "streaming"])
def test_the_task_admits_before_any_mode_runs_and_its_pool_process_lives(guarded_service, corpus, mode):
    service, root = guarded_service
    tenant = root / mode
    tenant.mkdir()
    secret = secret_of(corpus[0].path.parent)
    for file in corpus:
        if file.name in EXPECTED_ERRORS:
            os.link(file.path, tenant / file.name)
    (tenant / "secret-link.mp3").symlink_to(secret)  # a link out of the root
    pool = service.pool_pids()
    unread = mark_unread(secret)
    cases = {**{name: error for name, error in EXPECTED_ERRORS.items()}, "secret-link.mp3": "PathOutsideRootError"}
    for name, error in cases.items():
        outcome = service.submit(tenant / name, tenant / f"{name}.out.wav", mode, timeout=120)
        assert outcome["status"] == "FAILURE" and outcome["error_type"] == error, (name, outcome)
        assert not outcome.get("worker_lost") and outcome["log_lines"] == [], (name, outcome)
    assert service.pool_pids() == pool, "the pool process survived every refusal"
    assert not was_read(secret, unread)
    assert sorted(p.name for p in tenant.iterdir() if ".out" in p.name) == []
    outside = service.submit(secret, tenant / "stolen.wav", mode, timeout=120)
    assert outside["error_type"] == "PathOutsideRootError" and not (tenant / "stolen.wav").exists()


def test_the_tasks_compat_override_and_an_output_link_inside_the_root(guarded_service):
    """The task writes the service's 16-bit file unless its options say ``compat="float"``; an output path that is a
    link inside the storage root is replaced by the output (renamed into place), not written through."""
    service, root = guarded_service
    tenant = root / "compat"
    tenant.mkdir()
    sf.write(tenant / "in.wav", tone(2.0, 44100, 2), 44100, subtype="PCM_16")
    default = service.submit(tenant / "in.wav", tenant / "service.wav", "streaming", timeout=120)
    floating = service.submit(tenant / "in.wav", tenant / "float.wav", "streaming", timeout=120,
                              options={"compat": "float"})
    assert default["status"] == floating["status"] == "SUCCESS", (default, floating)
    assert default["report"]["options"]["compat"] == "service" and floating["report"]["options"]["compat"] == "float"
    assert sf.info(str(tenant / "service.wav")).subtype == "PCM_16"
    assert sf.info(str(tenant / "float.wav")).subtype == "FLOAT"
    target = tenant / "target.wav"
    target.write_bytes(b"another job's output")
    (tenant / "link.wav").symlink_to(target)
    linked = service.submit(tenant / "in.wav", tenant / "link.wav", "streaming", timeout=120)
    assert linked["status"] == "SUCCESS", linked
    assert not (tenant / "link.wav").is_symlink() and sf.info(str(tenant / "link.wav")).frames == 2 * 44100
    assert target.read_bytes() == b"another job's output"
