"""The private Ray cluster's folder and processes: made private, found, ended and removed.

- :func:`make_private_dir`: ``mkdtemp`` (0700, owned by the user) holding Ray's ``_temp_dir``
  as ``r/``. Ray chmods its own temp dir to 0777; the private parent keeps other users out of
  its logs and unix sockets anyway. The run directory links to it (``<run>/ray``).
- :func:`session_processes`: every process of this user that belongs to a session folder: its
  command line or an open file names the folder (gcs_server and the raylet carry it in their
  arguments; the workers and agents, renamed ``ray::...``, hold their log files open there).
- :func:`end_session`: SIGKILL those processes by PID and remove the folder and the link; a
  clean run calls it after ``ray.shutdown()``, a crashed one from its ``except`` path.
- The reaper (``python -m funrl.train.ray_session DRIVER_PID DIR LINK``, started by
  :func:`start_reaper` in its own session) waits for the driver to exit and then does the same:
  after a ``kill -9`` of the driver, gcs_server and the raylet die with it (Ray fate-shares them)
  but the dashboard and runtime-env agents stayed up, listening, for a minute or more.
- :func:`end_orphans`: the next start in the same run directory ends what the previous run left
  (the reaper killed too, say) and says so; it refuses while the process that started that
  session still runs (two runs in one directory).

Only psutil and the standard library here: the reaper must start fast and never import Ray.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from funrl.errors import UserError

log = logging.getLogger(__name__)

RAY_SUBDIR = "r"
DRIVER_FILE = "driver.pid"  # the process that started the session


class RunDirInUse(UserError, RuntimeError):
    """Another live funrl process runs a Ray session from this run directory."""


def make_private_dir(run_dir: Path) -> Path:
    """A fresh 0700 folder for Ray (short path: Ray's socket paths must stay under 107 bytes),
    linked from ``run_dir/ray``; returns Ray's ``_temp_dir`` inside it."""
    root = Path(tempfile.mkdtemp(prefix="funrl-ray-"))  # mode 0700
    (root / DRIVER_FILE).write_text(str(os.getpid()))
    link = run_dir / "ray"
    if link.is_symlink():
        link.unlink()
    if not link.exists():
        link.symlink_to(root)
    return root / RAY_SUBDIR


def session_processes(root: Path, exclude: tuple[int, ...] = ()) -> list[psutil.Process]:
    """Processes of this user whose command line or open files name ``root``."""
    needle, uid, found = str(root), os.getuid(), []
    for p in psutil.process_iter(["pid", "uids", "cmdline"]):
        if p.pid in exclude or p.pid == os.getpid() or p.info["uids"] is None or p.info["uids"].real != uid:
            continue
        try:
            if any(needle in a for a in p.info["cmdline"] or ()) or any(
                f.path.startswith(needle) for f in p.open_files()
            ):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_all(procs: list[psutil.Process], timeout: float = 10.0) -> list[int]:
    """SIGKILL each process by PID, wait for them; the PIDs that were alive."""
    killed = []
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
            killed.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    end = time.monotonic() + timeout
    while any(alive(p.pid) for p in procs) and time.monotonic() < end:
        time.sleep(0.1)
    return killed


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its parent, does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def end_session(root: Path, link: Path | None = None, exclude: tuple[int, ...] = ()) -> list[int]:
    """Kill what is left of the session in ``root``, remove ``root`` and ``link``; killed PIDs."""
    killed = kill_all(session_processes(root, exclude)) if root.exists() else []
    for _ in range(5):  # a process that was dying may still have added a file while it went
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            break
        time.sleep(0.5)
    if link is not None and link.is_symlink() and Path(os.readlink(link)) == root:
        link.unlink()
    return killed


def end_orphans(run_dir: Path) -> list[int]:
    """Before a new private cluster starts in ``run_dir``: end the previous run's Ray session if
    its folder is still there (the driver was killed and its reaper too), saying so."""
    link = run_dir / "ray"
    if not link.is_symlink():
        return []
    root = Path(os.readlink(link))
    owner = _live_driver(root)
    if owner is not None:
        raise RunDirInUse(
            f"run directory {run_dir} is in use: funrl process {owner} is running a Ray session from it "
            f"({root}); wait for it to end, or pick another run.name"
        )
    killed = end_session(root, link) if root.name.startswith("funrl-ray-") else []
    if killed:
        log.warning("ended %d processes left by the previous run's Ray session in %s (PIDs %s)",
                    len(killed), root, ", ".join(map(str, killed)))
    if link.is_symlink():
        link.unlink()
    return killed


def _live_driver(root: Path) -> int | None:
    """The PID of the process that started the session in ``root``, if it still runs (a PID
    reused by a process started after the session is not it)."""
    try:
        pid, written = int((root / DRIVER_FILE).read_text()), (root / DRIVER_FILE).stat().st_mtime
        p = psutil.Process(pid)
        if pid != os.getpid() and alive(pid) and p.create_time() <= written + 1:
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def start_reaper(root: Path, link: Path) -> subprocess.Popen:
    """The watcher that ends the session when this process exits, however it exits."""
    return subprocess.Popen(
        [sys.executable, "-m", "funrl.train.ray_session", str(os.getpid()), str(root), str(link)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


def stop_reaper(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel) or already gone
        while alive(pid):
            time.sleep(0.5)
        return
    import select

    select.select([fd], [], [])
    os.close(fd)


def _reap(driver: int, root: Path, link: Path) -> None:
    _wait_for_exit(driver)
    end_session(root, link)


if __name__ == "__main__":
    _reap(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
