"""The container's terminal (-t): made in its own devpts, relayed to ours by the helper.

Standard library only; the helper imports this before pivot_root.
"""

from __future__ import annotations

import os


def setup_terminal(slave: int) -> None:
    import fcntl
    import termios

    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def open_console(rootfs: str) -> tuple[int, int]:
    """A terminal from the container's own devpts (so `tty` names it), as runc makes one."""
    import fcntl
    import struct

    tiocsptlck, tiocgptn = 0x40045431, 0x80045430
    master = os.open(os.path.join(rootfs, "dev/pts/ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, tiocsptlck, struct.pack("i", 0))
    number = struct.unpack("i", fcntl.ioctl(master, tiocgptn, struct.pack("i", 0)))[0]
    slave = os.open(os.path.join(rootfs, f"dev/pts/{number}"), os.O_RDWR | os.O_NOCTTY)
    return master, slave


def relay(master: int, child: int) -> int:
    """Copy our stdin to the terminal and the terminal to our stdout until PID 1 exits; its wait status."""
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0) and os.isatty(1):
        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSADRAIN)  # TCSAFLUSH would drop what was typed before we started
    inputs = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(0)  # our input ended (or there was none): the terminal stays open
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid == child:
                drain(master)
                return status
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return os.waitpid(child, 0)[1]


def drain(master: int) -> None:
    import select

    while select.select([master], [], [], 0.05)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(1, data)


def copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass
