"""Clean stops: every process OpsDeck starts ends within a bounded time of SIGTERM, however the
signal arrives (to the one process, or to its whole process group as systemd, an init with
`-g` or a terminal's Ctrl-C send it).

Three pieces, each for a way a stop used to hang:

- Pool children ignore SIGTERM, as Celery already makes them ignore SIGINT. A signal sent to
  the worker's process group used to kill the children directly, one of them while it held the
  pool's inqueue lock, and the main process then waited for that lock for ever in billiard's
  `Pool._help_stuff_finish`. Now only the main process acts on SIGTERM: its warm shutdown lets
  the children finish the task in hand and stops them itself. A child ignores it from the
  fork on (`os.register_at_fork`), and Celery's child initializer no longer resets it: a
  signal that came while a child was still starting (slow under load, right after "ready")
  used to run the main process's handler inherited by the child, which started a shutdown
  and a stop deadline of its own there, and the worker's stop ended forced (status 3).
- A stop deadline in the worker's main process: once shutdown has begun, whatever still runs
  after `OPSDECK_WORKER_STOP_TIMEOUT_SECONDS` is killed (SIGKILL to every child, then the main
  process exits). Nothing is lost by it: tasks are acknowledged late, so Redis hands an
  interrupted task to another worker, and the images sweep re-queues images left `processing`.
- A supervised child stops with its parent (`die_with_parent`): `opsdeck serve`'s worker gets
  SIGTERM when `serve` dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("opsdeck.shutdown")

# Set by a supervising parent (`opsdeck serve`) in its child's environment: the parent's pid.
PARENT_PID_ENV = "OPSDECK_SUPERVISOR_PID"
# Exit status of a worker whose stop deadline ran out (its tasks were cut short and will run
# again): not 0, so a supervisor can tell it from a clean stop.
FORCED_STOP_STATUS = 3
_PR_SET_PDEATHSIG = 1

_deadline_seconds = 0.0
_main_pid = 0  # the worker's main process (install_worker_stop)
_deadline_started = threading.Event()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only). When the
    parent named by OPSDECK_SUPERVISOR_PID is already gone, exit at once."""
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        log.warning("die_with_parent_unavailable", errno=ctypes.get_errno())
        return
    if str(os.getppid()) != expected:  # the parent died before the prctl
        os.kill(os.getpid(), sig)


def install_worker_stop(stop_timeout: float) -> None:
    """Called in `opsdeck worker` before Celery starts: pool children ignore SIGTERM, and the
    main process has `stop_timeout` seconds from the start of its shutdown to end."""
    from celery import signals
    from celery.concurrency import prefork

    global _deadline_seconds, _main_pid
    _deadline_seconds = stop_timeout
    _main_pid = os.getpid()
    # From the fork on: before Celery's initializer runs in the child, the child still has the
    # main process's SIGTERM handler (a warm shutdown of its own)...
    os.register_at_fork(after_in_child=_shield_forked_child)
    # ...and the initializer would set SIGTERM back to its default (death) before ignoring
    # what WORKER_SIGIGNORE names.
    prefork.WORKER_SIGRESET.discard("SIGTERM")
    signals.worker_process_init.connect(_shield_pool_child, weak=False)
    signals.worker_shutting_down.connect(_start_stop_deadline, weak=False)


def _shield_forked_child() -> None:
    # Only the worker's main process forks pool children; a grandchild inherits the setting.
    if os.getppid() == _main_pid:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _shield_pool_child(**_: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _start_stop_deadline(**_: Any) -> None:
    if _deadline_started.is_set() or os.getpid() != _main_pid:
        return
    _deadline_started.set()
    threading.Thread(target=_enforce_deadline, name="stop-deadline", daemon=True).start()


def _enforce_deadline() -> None:
    threading.Event().wait(_deadline_seconds)
    children = child_pids(os.getpid())
    log.warning(
        "worker_stop_forced",
        seconds=_deadline_seconds,
        children=len(children),
        hint="tasks in flight run again (acks_late; the images sweep)",
    )
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os._exit(FORCED_STOP_STATUS)


def child_pids(parent: int) -> list[int]:
    """The live child processes of `parent`, read from /proc (empty where there is none)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            # The command name may hold spaces and parentheses: split after the last ')'.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found
