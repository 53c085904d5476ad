"""A plain progress line on stderr for batch runs: samples done, running accuracy, rate and ETA.

On a terminal the line is redrawn in place (carriage return); otherwise a line is printed at most
every `every` seconds and once at the end, so logs stay short. The ETA counts only samples done in
this process (resumed ones finish instantly and would flatter the rate). No colours, no threads.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_secs(s: float) -> str:
    s = max(0, int(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


class Progress:
    """Counts samples and problems; `render()` gives the current line."""

    def __init__(self, total_samples: int, total_problems: int, stream: TextIO | None = None,
                 enabled: bool = True, every: float = 10.0, label: str = "eval"):
        self.total = total_samples
        self.problems_total = total_problems
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.every = every
        self.label = label
        self.done = 0
        self.correct = 0
        self.problems_done = 0
        self.voted_correct = 0
        self._fresh = 0  # samples finished by this process
        self._t0 = time.monotonic()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def resumed(self, samples: int, correct: int, problems: int, voted_correct: int) -> None:
        """Count what an earlier run already stored."""
        self.done += samples
        self.correct += correct
        self.problems_done += problems
        self.voted_correct += voted_correct
        self.show()

    def sample_done(self, correct: bool) -> None:
        self.done += 1
        self._fresh += 1
        self.correct += int(correct)
        self.show()

    def problem_done(self, correct: bool | None, unused_samples: int = 0) -> None:
        """A problem finished; samples it did not run (early stop) leave the total."""
        self.problems_done += 1
        self.voted_correct += int(bool(correct))
        self.total = max(self.done, self.total - unused_samples)
        self.show()

    def render(self) -> str:
        acc = f"{self.correct / self.done:.3f}" if self.done else "-"
        elapsed = time.monotonic() - self._t0
        eta = "-"
        if self._fresh and self.total > self.done:
            eta = _fmt_secs(elapsed / self._fresh * (self.total - self.done))
        elif self.total <= self.done:
            eta = "0m00s"
        return (f"{self.label}: samples {self.done}/{self.total} | pass@1 {acc} | problems "
                f"{self.problems_done}/{self.problems_total} (voted right {self.voted_correct}) | "
                f"elapsed {_fmt_secs(elapsed)} | ETA {eta}")

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._tty:
            self.stream.write("\r" + self.render() + "\x1b[K")
            self.stream.flush()
        elif force or now - self._last >= self.every:
            self._last = now
            self.stream.write(self.render() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self._tty:
                self.stream.write("\r" + self.render() + "\x1b[K\n")
                self.stream.flush()
            else:
                self.show(force=True)
