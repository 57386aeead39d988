"""The launcher's side of the child process: starting it, teeing its output, forwarding signals.

:class:`ChildProcess` starts the command in its own process group with the protocol's
environment (:meth:`replicator._protocol.ChildContext.to_environ`), copies its stdout and stderr
to the terminal and to the run's logs (secrets removed, metric lines parsed on the way), and
forwards SIGINT/SIGTERM/SIGHUP to it, escalating on repeats. :class:`Heartbeat` touches the run's
heartbeat while the child runs, so that a dead launcher shows as a crashed run. On Linux the
child gets SIGTERM when the launcher dies (parent-death signal), so no orphan trains on.
"""

from __future__ import annotations

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
from ..redact import LineRedactor, secret_values
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
        self.threads = [
            self._start_tee(self.proc.stdout, stdout, run_dir / "stdout.log"),
            self._start_tee(self.proc.stderr, stderr, run_dir / "stderr.log"),
        ]

    def _start_tee(
        self, pipe: IO[bytes] | None, terminal: IO[bytes], log_path: Path
    ) -> threading.Thread:
        thread = threading.Thread(target=self._tee, args=(pipe, terminal, log_path), daemon=True)
        thread.start()
        return thread

    def _tee(self, pipe: IO[bytes] | None, terminal: IO[bytes], log_path: Path) -> None:
        assert pipe is not None
        fd = pipe.fileno()
        # One redactor per stream: a key block printed on stdout is open on stdout only.
        redactor = LineRedactor(self.secrets)
        parts: list[bytes] = []  # the unfinished last line, in the pieces it arrived in
        size = 0
        with open(log_path, "ab", buffering=0) as log:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except InterruptedError:
                    continue
                if not chunk:
                    break
                _show(terminal, chunk)
                newline = chunk.rfind(b"\n")
                if newline < 0:
                    parts.append(chunk)
                    size += len(chunk)
                    if size > _MAX_PENDING:
                        # A line without end (a progress bar, one huge JSON line): write its
                        # head, keeping a tail long enough to hold any secret cut in two.
                        pending = b"".join(parts)
                        cut = _safe_cut(pending, len(pending) - _KEEP)
                        log.write(self._lines([pending[:cut]], redactor, ended=False))
                        parts, size = [pending[cut:]], len(pending) - cut
                    continue
                block = b"".join([*parts, chunk[:newline]])
                rest = chunk[newline + 1 :]
                parts, size = ([rest], len(rest)) if rest else ([], 0)
                log.write(self._lines(block.split(b"\n"), redactor))
            if parts:
                log.write(self._lines([b"".join(parts)], redactor, ended=False))

    def _lines(self, lines: list[bytes], redactor: LineRedactor, *, ended: bool = True) -> bytes:
        out = []
        for raw in lines:
            text = raw.decode("utf-8", "replace")
            self._parse_metrics(text)
            clean = redactor.line(text)
            if clean is not None:
                out.append(clean)
        if not out:
            return b""
        return ("\n".join(out) + ("\n" if ended else "")).encode("utf-8")

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
        for t in self.threads:
            t.join(timeout=30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code


_MAX_PENDING = 1 << 20  # bytes of an unfinished line held before its head is written
_KEEP = 16384  # bytes kept back from such a write: longer than any key or secret value


def _safe_cut(data: bytes, at: int) -> int:
    """Where to cut ``data`` at or before ``at``: after a CR or a space (secrets hold neither),
    else at the start of a UTF-8 character."""
    window = data[max(0, at - _KEEP) : at]
    for sep in (b"\r", b" ", b"\t"):
        found = window.rfind(sep)
        if found >= 0:
            return max(0, at - _KEEP) + found + 1
    while at > 0 and data[at] & 0xC0 == 0x80:
        at -= 1
    return at


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
