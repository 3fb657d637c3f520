"""A memory container for a command or a whole worker: a child memory cgroup, and the kernel's OOM killer as judge.

A container runtime puts a service's processes in a memory cgroup, and the kernel charges the group for
what its processes touch: anonymous memory, and the page cache of what they read and write (reclaimed
before anyone is killed), shared pages once. At the limit it reclaims, and then its OOM killer ends a
process of the group. :class:`MemoryContainer` makes such a group under the harness's own cgroup:

- cgroup v2 where the memory controller is delegated to the harness's cgroup: ``memory.max``, with
  ``memory.swap.max`` 0;
- cgroup v1 (this machine kind): ``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes`` where
  the kernel accounts swap, so that swap cannot stretch the limit;
- else (not root, no controller) the harness's RSS watchdog holds the limit (:mod:`bench.measuring.measure`).

Every result says which: :attr:`MemoryContainer.enforced_by` is ``"kernel memcg v1"``, ``"kernel memcg v2"``
or ``"watchdog"``. ``AUDIONORM_BENCH_LIMIT_BY=watchdog`` forces the watchdog.

A command joins the group before it execs (:meth:`MemoryContainer.wrap`), so everything it starts is
charged there too. The group is removed when the container closes, and also when the harness dies
without closing it (a SIGKILL, a Ctrl-C): a small keeper process holds the group's path and the read end
of a pipe whose write end only the harness has; at end of file it kills what is left in the group and
removes it. Only groups this module made are ever changed.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

KERNEL_V1, KERNEL_V2, WATCHDOG = "kernel memcg v1", "kernel memcg v2", "watchdog"
#: The kernel's log line for an OOM kill names the process: ``Killed process PID (COMMAND)``.
KILLED_PROCESS = re.compile(r"Killed process (\d+) \(([^)]*)\)")
#: Set to ``watchdog`` to hold every limit with the harness's RSS watchdog, as where no cgroup can be made.
FORCE_ENV = "AUDIONORM_BENCH_LIMIT_BY"
#: The name of every group this module makes: ``audionorm-bench-<harness pid>-<n>``.
PREFIX = "audionorm-bench-"

# The keeper: waits for end of file on its stdin (the harness closed the container, or died), then kills what
# is left in the group until it is empty, and removes it. POSIX sh: a process of its own costs about 1 MB.
_KEEPER = """
cat >/dev/null
while :; do
    pids=$(cat "$1/cgroup.procs" 2>/dev/null) || break
    [ -z "$pids" ] && break
    kill -9 $pids 2>/dev/null
    sleep 0.02
done
rmdir "$1" 2>/dev/null
exit 0
"""
# The wrapper a contained command starts as: it joins the group, then becomes the command (same pid).
_JOIN = 'echo $$ > "$0" && exec "$@"'


@dataclass(frozen=True)
class Charge:
    """What the kernel charged a container. Bytes; ``oom_kills``: processes its OOM killer ended.

    ``anon_bytes`` and ``file_bytes`` split the charge (v1 ``total_rss`` / ``total_cache``, v2 ``anon`` /
    ``file``) at the sample of :meth:`MemoryContainer.sample` that saw the most charged, or at the end
    where nothing was sampled: the kernel keeps a peak, but not its split.
    """

    peak_bytes: int
    anon_bytes: int
    file_bytes: int
    oom_kills: int


class MemoryContainer:
    """A memory limit of ``limit_bytes`` for the processes started with :meth:`wrap` (and their children).

    Use it as a context manager; :attr:`enforced_by` says who holds the limit. With the watchdog
    (:attr:`kernel` False) :meth:`wrap` returns the command as it is and :meth:`charge` is None: the
    caller samples RSS and kills at the limit itself.
    """

    _made = 0

    def __init__(self, limit_bytes: int | None, *, force: str | None = None):
        self.limit_bytes = None if limit_bytes is None else int(limit_bytes)  # None: the kernel only counts
        self.path: Path | None = None
        self.version: int | None = None
        self._split_at_most: tuple[int, int, int] | None = None  # (charged, anon, file) at the largest sample
        self._closed_charge: Charge | None = None
        self._keeper: subprocess.Popen | None = None
        self._keeper_pipe: int | None = None
        if (force or os.environ.get(FORCE_ENV)) != WATCHDOG:
            self._make()

    @property
    def kernel(self) -> bool:
        """Whether the kernel holds the limit (a memory cgroup was made)."""
        return self.path is not None

    @property
    def enforced_by(self) -> str:
        return {1: KERNEL_V1, 2: KERNEL_V2}.get(self.version, WATCHDOG)

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` as it must be started to run in the container: it joins the group, then execs."""
        if not self.kernel:
            return list(command)
        return ["/bin/sh", "-c", _JOIN, str(self.path / "cgroup.procs"), *map(str, command)]

    def pids(self) -> list[int]:
        """The processes in the container now."""
        if not self.kernel:
            return []
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def set_limit(self, limit_bytes: int | None) -> None:
        """A new limit (None: none) for what runs in the container now; the kernel reclaims down to it at once."""
        self.limit_bytes = None if limit_bytes is None else int(limit_bytes)
        if self.kernel:
            _limit(self.path, self.version, self.limit_bytes)

    def start_window(self) -> None:
        """Count the peak and its split from now on (v1 resets ``memory.max_usage_in_bytes``; v2 keeps its
        ``memory.peak``, so there the window's peak is the largest sample)."""
        self._split_at_most = None
        if self.kernel and self.version == 1:
            (self.path / "memory.max_usage_in_bytes").write_text("0")

    def sample(self) -> int | None:
        """Bytes charged now, its split kept where it is the most seen so far (None with the watchdog)."""
        if not self.kernel or self._closed_charge is not None:
            return None
        charged = self._charged_now()
        if self._split_at_most is None or charged > self._split_at_most[0]:  # memory.stat read only then
            self._split_at_most = (charged, *self._split_now())
        return charged

    def charge(self) -> Charge | None:
        """What the kernel charged: the peak, its split (see :class:`Charge`), and its OOM kills (None with the
        watchdog)."""
        if not self.kernel:
            return None
        if self._closed_charge is not None:
            return self._closed_charge
        _, anon, file = self._split_at_most or (0, *self._split_now())
        if self.version == 1:
            return Charge(_number(self.path / "memory.max_usage_in_bytes"), anon, file,
                          _stat(self.path / "memory.oom_control").get("oom_kill", 0))
        peak = self.path / "memory.peak"  # Linux 5.19 and later
        return Charge(_number(peak if peak.exists() else self.path / "memory.current"), anon, file,
                      _stat(self.path / "memory.events").get("oom_kill", 0))

    def _charged_now(self) -> int:
        return _number(self.path / ("memory.usage_in_bytes" if self.version == 1 else "memory.current"))

    def _split_now(self) -> tuple[int, int]:
        """(anonymous, page cache) charged now, bytes."""
        stat = _stat(self.path / "memory.stat")
        if self.version == 1:
            return stat.get("total_rss", 0), stat.get("total_cache", 0)
        return stat.get("anon", 0), stat.get("file", 0)

    def kernel_log(self) -> list[str]:
        """The kernel's own lines on the OOM kills in this container, where the machine lets us read its log."""
        return [line.split("] ", 1)[-1] for line in self._kill_lines()]

    def oom_killed(self) -> list[dict]:
        """The processes the kernel's OOM killer ended in this container, from its log: ``pid``, ``command``
        and ``time`` (seconds since the epoch)."""
        since_boot_to_epoch = time.time() - time.monotonic()
        return [{"pid": int(m.group(1)), "command": m.group(2), "time": _log_seconds(line) + since_boot_to_epoch}
                for line in self._kill_lines() for m in KILLED_PROCESS.finditer(line)]

    def _kill_lines(self) -> list[str]:
        if not self.kernel:
            return []
        try:
            log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        # lines since the group was made: an older group of the same name (a pid used again) is not this one
        since = [line for line in log.splitlines() if _log_seconds(line) >= self._made_at - 1.0]
        text = "\n".join(since)
        killed = {m.group(1) for m in re.finditer(rf"task_memcg=\S*/{re.escape(self.path.name)},task=\S+,pid=(\d+)",
                                                  text)}
        return [line for line in since
                if "Killed process" in line and any(f"Killed process {pid} " in line for pid in killed)]

    def close(self) -> None:
        """Kill what is left in the container and remove its group; returns when the group is gone.
        :meth:`charge` still answers, with the figures it had then."""
        if self.kernel and self._closed_charge is None:
            self._closed_charge = self.charge()
        if self._keeper_pipe is not None:
            os.close(self._keeper_pipe)
            self._keeper_pipe = None
        if self._keeper is not None:
            self._keeper.wait()
            self._keeper = None

    def __enter__(self) -> MemoryContainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _make(self) -> None:
        found = own_memory_cgroup()
        if found is None:
            return
        parent, version = found
        remove_stale(parent)
        MemoryContainer._made += 1
        path = parent / f"{PREFIX}{os.getpid()}-{MemoryContainer._made}"
        try:
            path.mkdir()
        except OSError:
            return
        try:
            if self.limit_bytes is not None:
                _limit(path, version, self.limit_bytes)
        except OSError:
            path.rmdir()
            return
        read_end, self._keeper_pipe = os.pipe()  # both not inherited by what the harness starts later
        self._keeper = subprocess.Popen(["/bin/sh", "-c", _KEEPER, "keeper", str(path)], stdin=read_end,
                                        start_new_session=True)  # a Ctrl-C at the terminal does not reach it
        os.close(read_end)
        self.path, self.version, self._made_at = path, version, time.monotonic()


def _limit(path: Path, version: int, limit_bytes: int | None) -> None:
    """Write the group's limit (None: none)."""
    if version == 1:
        memory, memsw = path / "memory.limit_in_bytes", path / "memory.memsw.limit_in_bytes"
        # the kernel accounts swap: memory + swap no more than memory alone; memsw may never be below memory,
        # so memory goes first when the limit falls, memsw when it rises
        rising = memsw.exists() and (limit_bytes is None or _number(memsw) < limit_bytes)
        for name in ((memsw, memory) if rising else (memory, memsw)):
            if name.exists():
                name.write_text("-1" if limit_bytes is None else str(limit_bytes))
        return
    (path / "memory.max").write_text("max" if limit_bytes is None else str(limit_bytes))
    swap = path / "memory.swap.max"
    if swap.exists():
        swap.write_text("0")


def own_memory_cgroup() -> tuple[Path, int] | None:
    """The memory cgroup this process is in, as a folder a child group can be made in, and its version (1 or 2);
    None where none can be made (no memory controller there, or no right to write)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    entries = {controllers: path for _, controllers, path in (line.split(":", 2) for line in lines)}
    for controllers, relative in entries.items():
        if "memory" in controllers.split(","):
            folder = _folder(_mount_point("cgroup", "memory"), relative)
            if folder and (folder / "memory.limit_in_bytes").exists() and os.access(folder, os.W_OK):
                return folder, 1
    if "" in entries:
        folder = _folder(_mount_point("cgroup2", None), entries[""])
        if folder and os.access(folder, os.W_OK) and _memory_delegated(folder):
            return folder, 2
    return None


def _folder(mount: tuple[Path, str] | None, relative: str) -> Path | None:
    """Where the group ``relative`` (as /proc/self/cgroup names it) is in the file system: ``mount`` is the
    hierarchy's mount point and the group it shows at its top (not ``/`` inside a cgroup namespace)."""
    if mount is None:
        return None
    point, top = mount
    inside = relative[len(top):] if top != "/" and relative.startswith(top) else relative
    return point / inside.lstrip("/")


def _memory_delegated(folder: Path) -> bool:
    """Whether children of ``folder`` (cgroup v2) get the memory controller."""
    try:
        return "memory" in (folder / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False


def _mount_point(fstype: str, option: str | None) -> tuple[Path, str] | None:
    """The mount point of a ``fstype`` file system (with ``option`` among its options) and the folder of it
    mounted there (``/proc/self/mountinfo``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields, _, tail = line.partition(" - ")
        kind, _, super_options = tail.split(" ", 2) if tail.count(" ") >= 2 else (tail, "", "")
        if kind == fstype and (option is None or option in super_options.split(",")):
            return Path(fields.split()[4]), fields.split()[3]
    return None


def remove_stale(parent: Path) -> list[Path]:
    """Remove the groups this module made under ``parent`` for a harness that has died (their keeper died with
    it, as under a machine's OOM killer or ``kill -9`` of the whole session): their processes killed, then the
    group. The groups removed."""
    removed = []
    for group in parent.glob(f"{PREFIX}*"):
        owner = owner_pid(group)
        if owner is None or _alive(owner):
            continue
        subprocess.run(["/bin/sh", "-c", _KEEPER, "keeper", str(group)], stdin=subprocess.DEVNULL, check=False)
        if not group.exists():
            removed.append(group)
    return removed


def owner_pid(group: Path) -> int | None:
    """The pid of the harness that made ``group`` (``audionorm-bench-<pid>-<n>``); None for a name not of ours."""
    match = re.fullmatch(rf"{PREFIX}(\d+)-\d+", group.name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_seconds(line: str) -> float:
    """The time of a kernel log line (``[  852.398378] ...``: seconds since boot, the monotonic clock's)."""
    match = re.match(r"\[\s*(\d+\.\d+)\]", line)
    return float(match.group(1)) if match else 0.0


def _stat(path: Path) -> dict[str, int]:
    """A cgroup file of ``name value`` lines, as numbers."""
    try:
        pairs = (line.split() for line in path.read_text().splitlines())
    except OSError:
        return {}
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].lstrip("-").isdigit()}


def _number(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0

