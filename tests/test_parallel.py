"""The threading helpers: a consumer aside, one decode read twice. Errors and stops never leave a thread waiting."""

import sys
import threading
import time

import numpy as np
import pytest

from audionorm_lab.dsp.parallel import Aside
from audionorm_lab.stream.shared_source import SharedSource, SourceClosed


class CountingSource:
    """``read(n)`` over frames 0, 1, 2, ... (one channel), ``total`` of them; may fail at ``fail_at``."""

    def __init__(self, total, fail_at=None):
        self.total, self.fail_at, self.frames_read, self.closed = total, fail_at, 0, False
        self.info = type("Info", (), {"channels": 1, "frames": total})()

    def read(self, frames):
        if self.fail_at is not None and self.frames_read >= self.fail_at:
            raise OSError("decoder failed")
        end = min(self.total, self.frames_read + frames)
        block = np.arange(self.frames_read, end, dtype=np.float32)[:, None]
        self.frames_read = end
        return block

    def close(self):
        self.closed = True


def lead(shared, block=100):
    """The leader's loop on a thread: read to the end (or an error); what it saw."""
    seen = {"frames": 0, "error": None}

    def run():
        try:
            while len(block_read := shared.read(block)) == block:
                seen["frames"] += block
            seen["frames"] += len(block_read)
        except BaseException as exc:  # noqa: BLE001
            seen["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, seen


def waiting(thread) -> bool:
    """Whether ``thread`` is blocked in a ``threading.Condition`` wait now: it goes no further until woken."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def settle(thread, condition, timeout=60.0):
    """Wait until ``condition()`` holds and ``thread`` waits: what it has done then is all it does until woken,
    however fast or slow the machine (no sleep that a loaded machine could outlast)."""
    deadline = time.monotonic() + timeout
    while not (condition() and waiting(thread)):
        assert thread.is_alive() and time.monotonic() < deadline, "the thread never came to wait"
        time.sleep(0.01)


def test_the_follower_reads_the_leaders_frames_in_any_sizes():
    shared = SharedSource(CountingSource(10_000), capacity_frames=1_000)
    thread, seen = lead(shared)
    follower = shared.follower()
    parts = []
    for size in [1, 7, 333, 999, 50] * 100:
        part = follower.read(size)
        parts.append(part)
        if len(part) < size:
            break
    thread.join(5)
    assert not thread.is_alive() and seen == {"frames": 10_000, "error": None}
    assert np.array_equal(np.concatenate(parts)[:, 0], np.arange(10_000, dtype=np.float32))
    assert follower.frames_read == 10_000 and len(follower.read(10)) == 0


def test_the_leader_waits_at_its_capacity_and_stop_wakes_it():
    source = CountingSource(10_000)
    shared = SharedSource(source, capacity_frames=1_000)
    thread, seen = lead(shared)
    settle(thread, lambda: source.frames_read >= 1_000)
    assert source.frames_read == 1_000, "the leader waits once 1,000 frames are kept"
    shared.follower().read(500)
    settle(thread, lambda: source.frames_read >= 1_500)
    assert source.frames_read == 1_500
    shared.close()
    thread.join(5)
    assert not thread.is_alive() and isinstance(seen["error"], SourceClosed) and source.closed


def test_a_decoder_error_reaches_the_follower_after_the_frames_before_it():
    shared = SharedSource(CountingSource(10_000, fail_at=600), capacity_frames=1_000)
    thread, seen = lead(shared)
    follower = shared.follower()
    assert len(follower.read(600)) == 600
    with pytest.raises(OSError, match="decoder failed"):
        follower.read(100)
    thread.join(5)
    assert isinstance(seen["error"], OSError)


def test_an_aside_consumer_sees_every_item_in_order():
    seen = []
    with Aside(seen.append) as aside:
        for i in range(1000):
            aside.put(i)
    assert seen == list(range(1000))


def test_an_aside_consumer_error_is_raised_in_the_caller_and_its_thread_ends():
    before = threading.active_count()

    def consume(item):
        if item == 3:
            raise ValueError("meter failed on item 3")

    with pytest.raises(ValueError, match="meter failed on item 3"):
        with Aside(consume, depth=1) as aside:
            for i in range(100):
                aside.put(i)
    assert threading.active_count() == before


def test_an_error_in_the_caller_drops_what_waits_and_ends_the_thread():
    before, seen = threading.active_count(), []
    with pytest.raises(KeyError):
        with Aside(lambda item: (time.sleep(0.01), seen.append(item)), depth=8) as aside:
            for i in range(8):
                aside.put(i)
            raise KeyError("writer failed")
    assert threading.active_count() == before and len(seen) < 8
