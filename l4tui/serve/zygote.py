"""The warm parent of every lab session: imported once, forked per login (`l4tui serve`).

Starting Python and importing Textual and the simulator takes about a second
of CPU; thirty students logging in at once would queue for it. So the server
starts this process once: it imports everything and parses the lab, then
waits for requests on a Unix socket. A request carries the session's pty (the
slave end, as a passed file descriptor) and what to run; the zygote forks, and
the child makes the pty its controlling terminal, takes the allow-listed
environment and limits, and runs `l4tui lab …` — with nothing left to import.
Children share the parent's pages until they write them, which keeps memory
per session low. The zygote reaps its children; the server learns of an end
from the pty.

Nothing outlives the server (issue 14): the zygote asks Linux for SIGKILL when
the server's thread that started it ends (`PR_SET_PDEATHSIG`), and leaves at
the end of its socket; each session asks for SIGTERM when the zygote ends (it
saves and exits). Either checks its parent again after asking, since the
parent may have gone just before. A session also ends when its terminal
hangs up (l4tui/serve/driver.py) and a warm slot when its pool socket closes
(l4tui/tui/warm.py). SIGHUP, which a parent may have left ignored (`nohup`),
is a SIGTERM here.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import sys
import termios

# Warm up: every module a session needs is imported here, before any fork — the
# app, the driver TEXTUAL_DRIVER names (the server sets it) and the CLI — so a
# session starts with nothing left to import.
import l4tui.serve.driver
import l4tui.tui.app  # noqa: F401
from l4tui.cli import main as l4tui_main
from l4tui.cli.sessions import lab_session

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int, parent: int) -> bool:
    """Have Linux send `sig` when our parent's thread ends; False if `parent` has gone already.

    Elsewhere (no prctl) only the parent check holds; the sockets and the pty still end us.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    return os.getppid() == parent


def _hang_up(signum: int, frame: object) -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # the session's own handler saves its work


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(req: dict, slave: int, control: int | None, zygote: int) -> None:
    signal.signal(signal.SIGHUP, _hang_up)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not die_with_parent(signal.SIGTERM, zygote):
        os._exit(1)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    os.environ.clear()
    os.environ.update(req["env"])
    if control is not None:  # a pool slot: its student comes later (l4tui/tui/app.py)
        if control != 3:
            os.dup2(control, 3)
            os.close(control)
        os.environ["L4TUI_POOL_FD"] = "3"
    os.chdir(req["cwd"])
    os.nice(5)
    cpu, mem = req["cpu_seconds"], req["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = l4tui_main(req["argv"])
    sys.stdout.flush()
    os._exit(code)


def serve(sock: socket.socket, lab: str) -> None:
    # Warm up: the lab itself, parsed and checked (its modules are imported above).
    lab_session(lab, None, False)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 65536, 2)
        except InterruptedError:
            continue
        if not msg or not fds:
            return  # the server has gone
        req = json.loads(msg)
        zygote = os.getpid()
        pid = os.fork()
        if pid == 0:
            sock.close()
            try:
                _child(req, fds[0], fds[1] if len(fds) > 1 else None, zygote)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode())


def main() -> None:
    fd, lab, server = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if not die_with_parent(signal.SIGKILL, server):
        sys.exit(1)  # the server has gone already
    serve(socket.socket(fileno=fd), lab)


if __name__ == "__main__":
    main()
