"""The launcher's side of the child process: starting it, teeing its output, forwarding signals.

:class:`ChildProcess` starts the command in its own process group with the protocol's
environment (:meth:`replicator._protocol.ChildContext.to_environ`), copies its stdout and stderr
to the terminal and to the run's logs (secrets removed by a
:class:`~replicator.redact.StreamRedactor`, metric lines parsed on the way), and forwards
SIGINT/SIGTERM/SIGHUP to it, escalating on repeats. The output is read to its end whatever
happens to the logs: when one cannot be written (disk full), it ends at its last whole line,
the terminal still gets everything, and :attr:`ChildProcess.output_error` says why. :class:`Heartbeat` touches the run's
heartbeat while the child runs, so that a dead launcher shows as a crashed run. On Linux the
child gets SIGTERM when the launcher dies (parent-death signal), so no orphan trains on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .._util.io import atomic_write_json, read_json
from ..redact import StreamRedactor, secret_values
from ..store import HEARTBEAT_INTERVAL_S
from .metrics import MetricPattern, MetricsWriter
from .recorder import touch_heartbeat

__all__ = ["ChildProcess", "Heartbeat", "LiveSummary", "forwarding_signals"]

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ChildProcess:
    """The running child process with its tee threads; ``wait()`` gives its exit code."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        run_dir: Path,
        *,
        pattern: MetricPattern | None,
        writer: MetricsWriter | None,
        stdout: IO[bytes],
        stderr: IO[bytes],
        cwd: str,
        resumed: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.secrets = secret_values(env, command)
        self.pattern = pattern
        self.writer = writer
        # A resumed script counts its steps again (often from 0): its first parsed step tells
        # from where the earlier sessions' lines are superseded.
        self._marker_pending = resumed
        self._marker_lock = threading.Lock()
        self.interrupted: str | None = None
        self.signals_received = 0
        self.proc = subprocess.Popen(
            list(command),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=None,
            cwd=cwd,
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        # Room for the run's last records (run.json, the status) if the output fills the disk.
        self._reserve = _reserve_space(run_dir)
        self.tees = [
            _Tee(self.proc.stdout, stdout, run_dir / "stdout.log", self),
            _Tee(self.proc.stderr, stderr, run_dir / "stderr.log", self),
        ]

    @property
    def output_error(self) -> str | None:
        """Why the output is not all in stdout.log and stderr.log (``disk full at PATH ...``),
        or None. The terminal got all of it either way."""
        return next((t.error for t in self.tees if t.error), None)

    def parse_metrics(self, text: str) -> None:
        """Metrics in ``text`` (output lines, not redacted) go to the metrics writer."""
        for line in text.split("\n"):
            self._parse_metrics(line)

    def _parse_metrics(self, text: str) -> None:
        if self.pattern is None or self.writer is None:
            return
        # tqdm-style carriage returns: the last segment is what the line shows.
        for segment in text.split("\r"):
            parsed = self.pattern.parse(segment)
            if parsed is not None:
                step, values = parsed
                if self._marker_pending:
                    self._write_resume_marker(step)
                self.writer.log(values, step)

    def _write_resume_marker(self, step: int | None) -> None:
        assert self.writer is not None
        with self._marker_lock:
            if not self._marker_pending:
                return
            self._marker_pending = False
            first = step if step is not None else self.writer._next_step
            try:
                self.writer.write_event(
                    {"event": "resume", "step": int(first) - 1, "time": time.time()}
                )
            except OSError:
                pass  # the metrics writer records its own write errors

    def forward(self, signum: int) -> None:
        """Forward a signal to the child's process group; escalate on repeats."""
        self.signals_received += 1
        self.interrupted = signal.Signals(signum).name
        sig = signum
        if self.signals_received == 2:
            sig = signal.SIGTERM
        elif self.signals_received >= 3:
            sig = signal.SIGKILL
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """Wait for the child and its output; its exit code (negative: killed by a signal)."""
        while True:
            try:
                code = self.proc.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - handlers normally catch SIGINT
                self.forward(signal.SIGINT)
        for tee in self.tees:
            tee.thread.join(timeout=30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        _release_space(self._reserve)
        return code


# Bytes asked of the pipe per read: an allocation past glibc's mmap threshold (128 KiB) would
# cost a map and an unmap per read, 50 us for each redraw of a progress bar.
_READ_SIZE = 1 << 16
_PIPE_SIZE = 1 << 20
_SMALL_READ = 4096
_BATCH_WAIT_S = 0.001
_METRIC_LINE_MAX = 1 << 16  # a longer piece of a line without end is no metric line
_RESERVE = 1 << 16  # bytes held on the store's disk while the child runs


class _Tee:
    """Copies one of the child's streams to the terminal and, secrets removed, to its log.

    The pipe is drained to its end whatever happens to the log: a write error (disk full) or
    any failure of the recording ends the log at its last complete line and is kept in
    :attr:`error`, while the terminal keeps getting every byte and the child never blocks.
    """

    def __init__(
        self, pipe: IO[bytes] | None, terminal: IO[bytes], path: Path, child: ChildProcess
    ) -> None:
        assert pipe is not None
        self.fd = pipe.fileno()
        self.terminal = terminal
        self.path = path
        self.child = child
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _widen(self.fd)
        # One redactor per stream: a key block printed on stdout is open on stdout only.
        redactor = StreamRedactor(self.child.secrets)
        metrics = _MetricLines(self.child) if self.child.pattern is not None else None
        log: _Log | None = None
        try:
            log = _Log(self.path)
        except OSError as exc:
            self._fail(None, exc)
        while True:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except InterruptedError:
                continue
            except OSError:  # closed by wait() after a grandchild kept it open for too long
                break
            if not chunk:
                break
            _show(self.terminal, chunk)
            if len(chunk) < _SMALL_READ:
                # A chatty child (a progress bar redrawn per step) would cost three system calls
                # and a pass through Python per redraw: a millisecond's wait, invisible on the
                # terminal, lets the next read take hundreds of them at once.
                time.sleep(_BATCH_WAIT_S)
            if log is None:
                continue  # drained, not recorded
            try:
                if metrics is not None:
                    metrics.feed(chunk)
                log.write(redactor.feed(chunk))
            except Exception as exc:
                self._fail(log, exc)
                log = None
        if log is not None:
            try:
                if metrics is not None:
                    metrics.close()
                log.write(redactor.close())
                log.close()
            except Exception as exc:
                self._fail(log, exc)

    def _fail(self, log: _Log | None, exc: Exception) -> None:
        """Stop recording: the log ends at its last complete line; the cause is kept."""
        kept = log.abandon() if log is not None else 0
        if isinstance(exc, OSError):
            reason = _OS_REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
            where = f"{reason} at {self.path}"
        else:  # a bug, named, rather than a child blocked on its pipe forever
            where = f"cannot write {self.path} ({type(exc).__name__}: {exc})"
        self.error = f"{where}: the output after its first {kept} bytes was shown but not recorded"


_OS_REASONS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}


class _Log:
    """stdout.log or stderr.log, written as the output comes; it can be cut back to the end of
    its last complete line, so that a failed write leaves no torn line."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size  # a resumed run appends
        self.line_end = self.size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)
        newline = data.rfind(b"\n")
        if newline >= 0:
            self.line_end = self.size - (len(data) - newline - 1)

    def close(self) -> None:
        os.close(self.fd)

    def abandon(self) -> int:
        """Cut what follows the last complete line and close; the bytes kept."""
        try:
            os.ftruncate(self.fd, self.line_end)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        return self.line_end


class _MetricLines:
    """Splits the raw output into lines for the metric pattern (tqdm-style carriage returns
    end a line too: the last segment is what the line shows)."""

    def __init__(self, child: ChildProcess) -> None:
        self.child = child
        self.pending = bytearray()

    def feed(self, chunk: bytes) -> None:
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            self.pending += chunk
            if len(self.pending) > _METRIC_LINE_MAX:
                self.pending.clear()
            return
        text = (bytes(self.pending) + chunk[:end]).decode("utf-8", "replace")
        self.pending[:] = chunk[end + 1 :]
        self.child.parse_metrics(text.replace("\r", "\n"))

    def close(self) -> None:
        if self.pending:
            self.child.parse_metrics(self.pending.decode("utf-8", "replace"))


def _widen(fd: int) -> None:
    """A 1 MiB pipe (Linux): fewer, larger reads when the child writes faster than it is read."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default size works too


def _reserve_space(run_dir: Path) -> Path | None:
    """A file of _RESERVE bytes, deleted when the child ends: when its output fills the disk,
    that room is left for the run's status. None when it cannot be written."""
    path = run_dir / ".reserve"
    try:
        path.write_bytes(os.urandom(_RESERVE))  # random: no filesystem compresses it away
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return path


def _release_space(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _show(terminal: IO[bytes], chunk: bytes) -> None:
    try:
        terminal.write(chunk)
        terminal.flush()
    except (OSError, ValueError):
        pass  # the terminal went away; keep recording


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the launcher dies (Linux), so no orphan runs on."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class _Forwarding:
    """Signals received before the child exists wait here until it does."""

    def __init__(self) -> None:
        self.child: ChildProcess | None = None
        self.pending: list[int] = []

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.child is not None:
            self.child.forward(signum)
        else:
            self.pending.append(signum)

    def attach(self, child: ChildProcess) -> None:
        """Forward what arrived while the child started, and everything from now on."""
        self.child = child
        for signum in self.pending:
            child.forward(signum)


@contextmanager
def forwarding_signals() -> Iterator[_Forwarding]:
    """SIGINT/SIGTERM/SIGHUP go to the child while the block runs (the handlers are restored).

    The handlers go in before the child exists, so that a signal arriving while it starts is
    forwarded as soon as it can be (not lost, and not killing the launcher unrecorded).
    """
    forwarding = _Forwarding()
    previous = {s: signal.signal(s, forwarding.on_signal) for s in _FORWARDED}
    try:
        yield forwarding
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Heartbeat:
    """Touches the run's heartbeat every HEARTBEAT_INTERVAL_S seconds until stopped."""

    def __init__(self, run_dir: Path) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(run_dir,), daemon=True)
        self._thread.start()

    def _loop(self, run_dir: Path) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL_S):
            touch_heartbeat(run_dir)

    def stop(self) -> None:
        """Stop touching the heartbeat (the thread ends within one interval)."""
        self._stop.set()


_MISSING = object()


class LiveSummary:
    """summary.json of a run whose metrics are parsed from its output, kept current while the
    child runs (as ``replicator.start()`` does for logged metrics): a crashed run still shows
    how far it got in ``ls`` and ``show``.

    A value the script set itself (a joined script writing summary.json) is left alone: only a
    key whose value is still the one written here (or, in a resumed run, the one the earlier
    sessions left, ``previous``) follows the parsed metrics.
    """

    def __init__(
        self, run_dir: Path, keys: Sequence[str], *, previous: Mapping[str, Any] | None = None
    ) -> None:
        self.path = run_dir / "summary.json"
        before = previous if previous is not None else self._read()
        self.written: dict[str, Any] = {k: before[k] for k in keys if k in before}

    def _read(self) -> dict[str, Any]:
        try:
            data = read_json(self.path)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def sync(self, writer: MetricsWriter, *, force: bool = False) -> None:
        """Write the latest parsed values when new ones were written (never raises OSError)."""
        if not (writer.changed or force):
            return
        writer.changed = False
        current = self._read()
        merged = dict(current)
        for key, value in list(writer.last.items()):
            have = current.get(key, _MISSING)
            if have is not _MISSING and have != self.written.get(key, _MISSING):
                continue  # the script's own value
            merged[key] = value
            self.written[key] = value
        if merged != current:
            try:
                atomic_write_json(self.path, merged, fsync=False)
            except OSError:
                pass  # the final summary is written when the child ends
