"""Redaction of a byte stream (a command's output) as it is read, in time linear in its length and
in bounded memory.

:class:`StreamRedactor` takes the bytes in the pieces they were read in and gives back what may
be written: whole lines, each redacted as :meth:`LineRedactor.line` redacts it (a key block
printed over several lines included), and, of a line that does not end (a progress bar redrawn
with ``\\r`` for hours, one huge JSON line), the head once more than ``HOLD`` bytes of it wait.
The head is cut at least ``WINDOW`` bytes before the end and never inside a secret found there,
so that a secret split over two reads is whole in what is kept.

A line that holds none of the redactor's trigger words (a key prefix, a literal secret value,
``://``) is passed on byte for byte without being decoded: the cost of a clean output is a few
substring searches per read.
"""

from __future__ import annotations

from collections.abc import Iterable

from .core import LineRedactor

__all__ = ["StreamRedactor"]

HOLD = 1 << 20
"""Bytes of a line without end held before its head is written."""
WINDOW = 1 << 16
"""Bytes kept back from such a write: longer than any key or secret value."""


class StreamRedactor:
    """Redacts one stream; :meth:`feed` each read, :meth:`close` at its end."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lines = LineRedactor(secrets)
        words = self._lines.triggers()
        self._triggers = _Triggers(*words) if words is not None else None
        self._pending = bytearray()  # the unfinished last line

    def feed(self, data: bytes) -> bytes:
        """What may be written now that ``data`` was read: the lines it ends, redacted, and the
        head of a line grown past ``HOLD`` bytes."""
        pending = self._pending
        before = len(pending)
        pending += data
        newline = data.rfind(b"\n")
        if newline >= 0:
            end = before + newline + 1
            with memoryview(pending) as view:
                lines = bytes(view[:end])
            del pending[:end]
            return self._redact(lines)
        if len(pending) > HOLD:
            return self._cut()
        return b""

    def close(self) -> bytes:
        """The unfinished last line, redacted (without a line end); the stream is over."""
        rest = bytes(self._pending)
        self._pending.clear()
        return self._redact(rest) if rest else b""

    def _redact(self, data: bytes) -> bytes:
        """``data`` (lines, the last one possibly without its end) redacted: only the lines
        that hold a trigger word, or follow a key block's BEGIN line, are decoded."""
        if not self._lines.in_key and not self._holds_trigger(data):
            return data
        finder = _Finder(data, self._triggers)
        out: list[bytes] = []
        pos, size = 0, len(data)
        while pos < size:
            if self._lines.in_key:
                start = pos
            else:
                hit = finder.next(pos)
                if hit < 0:
                    out.append(data[pos:])
                    break
                start = data.rfind(b"\n", pos, hit) + 1 or pos
            end = data.find(b"\n", start)
            end = size if end < 0 else end + 1
            out.append(data[pos:start])
            out.append(self._line(data[start:end]))
            pos = end
        return b"".join(out)

    def _holds_trigger(self, data: bytes | bytearray) -> bool:
        if self._triggers is None:
            return True
        exact, folded = self._triggers.candidates(data)
        if any(map(data.__contains__, exact)):  # map: no Python-level loop per word
            return True
        return bool(folded) and any(map(data.lower().__contains__, folded))

    def _line(self, raw: bytes) -> bytes:
        ended = raw.endswith(b"\n")
        text = (raw[:-1] if ended else raw).decode("utf-8", "replace")
        clean = self._lines.line(text)
        if clean is None:  # a key block's body line
            return b""
        return clean.encode("utf-8") + (b"\n" if ended else b"")

    def _cut(self) -> bytes:
        """Write the head of the unfinished line; keep at least WINDOW bytes of its end."""
        pending = self._pending
        limit = len(pending) - WINDOW
        if not self._lines.in_key and not self._holds_trigger(pending):
            # Nothing there can start a secret: cut after a \r (a progress bar's whole frame)
            # or else at the start of a UTF-8 character.
            at = pending.rfind(b"\r", limit - WINDOW, limit) + 1 or limit
            while at > 0 and pending[at] & 0xC0 == 0x80:
                at -= 1
            with memoryview(pending) as view:
                head = bytes(view[:at])  # one copy, not two
            del pending[:at]
            return head
        # surrogateescape: the kept end goes back to the very bytes it came from (a character
        # cut in two by the last read is completed by the next one)
        text = pending.decode("utf-8", "surrogateescape")
        at = _outside(self._lines.spans(text), len(text) - WINDOW)
        self._pending = bytearray(text[at:].encode("utf-8", "surrogateescape"))
        return self._line(text[:at].encode("utf-8", "surrogateescape"))


def _outside(spans: list[tuple[int, int]], limit: int) -> int:
    """The last position at or before ``limit`` inside none of ``spans`` (the end of a secret
    counts as outside), or ``limit`` when secrets back to back cover the last WINDOW before it."""
    at = limit
    moved = True
    while moved and at > limit - WINDOW:
        moved = False
        for start, end in spans:
            if start < at < end:
                at, moved = start, True
    return at if at > limit - WINDOW else limit


class _Finder:
    """The trigger words' next positions in one piece of a stream, each occurrence searched
    for once (the cost stays linear in the piece however many of its lines hold one)."""

    def __init__(self, data: bytes | bytearray, triggers: _Triggers | None) -> None:
        self.everywhere = triggers is None  # a rule without trigger words: every line is read
        exact, folded = triggers.candidates(data) if triggers is not None else ([], [])
        lower = data.lower() if folded else data
        self.words = [(word, data) for word in exact] + [(word, lower) for word in folded]
        self.next_at = [-2] * len(self.words)  # -2: not searched yet; -1: none further

    def next(self, pos: int) -> int:
        """Where the first trigger word at or after ``pos`` starts, or -1."""
        if self.everywhere:
            return pos
        best = -1
        for i, (word, text) in enumerate(self.words):
            at = self.next_at[i]
            if at == -1:
                continue
            if at < pos:
                at = self.next_at[i] = text.find(word, pos)
                if at < 0:
                    continue
            if best < 0 or at < best:
                best = at
        return best


_SMALL = 4096  # a piece up to this size is searched for every word at once

# Bytes from the most to the least common in program output (a rough guess is enough: it only
# orders the checks); a byte not listed counts as rare.
_COMMON = b" e0t1a.o2sni:r3l5-4d/6c78u9mph_g=,fbyw|vkx[]TSAEIRNOLCDP%#<>()jqzKVWYUGBHFMJQZX"


class _Triggers:
    """A redactor's trigger words (exact, or case-blind and lower-case), each with its bytes
    (both cases for a case-blind word) rarest first."""

    def __init__(self, exact: tuple[bytes, ...], folded: tuple[bytes, ...]) -> None:
        self.exact, self.folded = list(exact), list(folded)
        self.ranked: list[tuple[bytes, bool, list[bytes]]] = []
        for word, is_folded in [(w, False) for w in exact] + [(w, True) for w in folded]:
            classes = {bytes({b, *bytes([b]).upper()}) if is_folded else bytes([b]) for b in word}
            ranked = sorted(classes, key=lambda c: max(_rank(b) for b in c))
            self.ranked.append((word, is_folded, ranked))

    def candidates(self, data: bytes | bytearray) -> tuple[list[bytes], list[bytes]]:
        """The (exact, case-blind) words that can be in ``data``: in a large piece, those each
        of whose bytes is in it (one memchr per distinct byte: a progress bar or a line of one
        character rules most words out at once)."""
        if len(data) <= _SMALL:
            return self.exact, self.folded
        present: dict[bytes, bool] = {}
        exact: list[bytes] = []
        folded: list[bytes] = []
        for word, is_folded, classes in self.ranked:
            for alternatives in classes:
                here = present.get(alternatives)
                if here is None:
                    here = present[alternatives] = any(
                        data.find(alternatives[i : i + 1]) >= 0 for i in range(len(alternatives))
                    )
                if not here:
                    break
            else:
                (folded if is_folded else exact).append(word)
        return exact, folded


def _rank(byte: int) -> int:
    at = _COMMON.find(bytes([byte]))
    return len(_COMMON) - at if at >= 0 else 0
