"""The terminal driver of a served session: asleep while idle, gone with its terminal.

Textual's Linux driver reads the keyboard in a thread that wakes ten times a
second (a `select` with a 0.1 s timeout) to time out a lone Escape and to
notice that it should stop: thirty idle students, three hundred wake-ups a
second on the lab host. And a terminal that has gone (the server's end of the
pty closed) reads as end of file at once, for ever: that thread spun, its
writer thread died on EIO, and with the output queue full the app could
neither work nor end (issue 14: orphaned sessions burning CPU for hours).

This driver waits for a key with no timeout, except for a moment after one
(Textual's parser times out half a key sequence then); it is woken through a
pipe when asked to stop. The terminal's end — end of file or an error reading
it or writing to it — is SIGTERM to the session itself: the monitor saves its
work and exits, as when the server ends it, and if that does not finish within
`GRACE` seconds the process leaves anyway. `l4tui serve` selects it for its
sessions through TEXTUAL_DRIVER.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
import time
from codecs import getincrementaldecoder
from io import TextIOWrapper
from typing import IO, Any, cast

from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

SETTLE = 1.0  # seconds after a key during which half a sequence may still time out
TICK = 0.05  # how often the parser is asked about that meanwhile
GRACE = 10.0  # seconds to save and exit once the terminal has gone


def _hang_up() -> None:
    """The terminal has gone: end as if the server had ended the session."""
    watchdog = threading.Timer(GRACE, os._exit, (0,))
    watchdog.daemon = True
    watchdog.start()
    os.kill(os.getpid(), signal.SIGTERM)


class _Terminal:
    """The terminal as the writer thread writes it: after an error (EIO), writes go nowhere."""

    def __init__(self, file: IO[str], gone: Any) -> None:
        self._file = file
        self._gone = gone

    def write(self, text: str) -> None:
        try:
            self._file.write(text)
        except (OSError, ValueError):
            self._gone()

    def flush(self) -> None:
        try:
            self._file.flush()
        except (OSError, ValueError):
            self._gone()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding: the file's own
        return getattr(self._file, name)


class _WakingEvent(threading.Event):
    """The driver's exit event: setting it also wakes the input thread from its wait."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def set(self) -> None:
        super().set()
        with contextlib.suppress(OSError):  # the pipe is full: it is awake already
            os.write(self._fd, b"x")


class SessionDriver(LinuxDriver):
    """Textual's Linux driver, with a keyboard thread that sleeps and a terminal that can go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wake, wake_w = os.pipe()
        os.set_blocking(self._wake, False)
        os.set_blocking(wake_w, False)
        self.exit_event = _WakingEvent(wake_w)
        self._ended = False
        if self._file is not None:  # (LinuxDriver's: sys.__stderr__, the session's pty)
            # A stand-in for the file: the same writes, and an error ends the session.
            self._file = cast(TextIOWrapper, _Terminal(self._file, self._terminal_gone))

    def _terminal_gone(self) -> None:
        if not self._ended:
            self._ended = True
            _hang_up()

    def run_input_thread(self) -> None:
        """Read keys as they come; no wake-ups while nothing does."""
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")(errors="replace").decode
        last_key = float("-inf")
        with selectors.DefaultSelector() as selector:
            selector.register(self.fileno, selectors.EVENT_READ)
            selector.register(self._wake, selectors.EVENT_READ)
            while not self.exit_event.is_set():
                settling = time.monotonic() - last_key < SETTLE
                ready = {key.fd for key, _ in selector.select(TICK if settling else None)}
                if self._wake in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake, 64)
                if self.fileno in ready and not self.exit_event.is_set():
                    try:
                        data = os.read(self.fileno, 4096)
                    except BlockingIOError:
                        data = None
                    except OSError:  # EIO: the terminal has gone
                        data = b""
                    if data == b"":
                        self._terminal_gone()
                        return
                    if data:
                        last_key = time.monotonic()
                        for event in parser.feed(decode(data)):
                            self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)
