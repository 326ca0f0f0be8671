"""The server-side cost of one `message:send`, without clients or the network.

Drives the socket handler itself (`ChatNamespace.trigger_event("message:send", ...)`: the rate
limit, the service's transaction, the answer, the broadcast to the room and the `unread` push
after it) on the app `opsdeck web` serves, in a room of `--members` people, and prints per
send: the statements, this process's CPU and (distributed) PostgreSQL's and Redis's.

    .venv/bin/python bench/chat_send_cost.py --stack embedded
    .venv/bin/python bench/chat_send_cost.py --stack distributed --show-statements

Nobody is subscribed to the room (as in the fan-out bench's send -> ack phase), so what is
measured is the send, not the fan-out. CPU time, not wall-clock: compare runs by it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import stack_helpers


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _calibration_ms() -> float:
    """CPU time of a fixed pure-Python loop: how slow this machine's cores are right now (a
    loaded 2-core machine stretches every CPU time, by up to 3x). Divide by it to compare runs
    taken under different loads."""
    start = time.process_time()
    total = 0
    for number in range(1_000_000):
        total += number
    return (time.process_time() - start) * 1000


def _postgres_pids(data_dir: Path | None) -> list[int]:
    """The postmaster serving `data_dir` and its children (other clusters may run here)."""
    if data_dir is None:
        return []
    parents: dict[int, int] = {}
    postmaster = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(stat[1])
            command = (entry / "cmdline").read_bytes()
            if b"postgres" in command and str(data_dir).encode() in command:
                postmaster = int(entry.name)
    if postmaster is None:
        return []
    return [postmaster, *(pid for pid, parent in parents.items() if parent == postmaster)]


@contextlib.contextmanager
def _stack(kind: str) -> Iterator[tuple[str, str, Path | None, int | None]]:
    if kind == "embedded":
        root = Path(tempfile.mkdtemp(prefix="opsdeck-send-cost-"))
        try:
            yield f"sqlite:///{root / 'opsdeck.db'}", "", None, None
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    stack = stack_helpers().TestStack("integration")
    stack.start()
    try:
        redis_pid = stack.redis.process.pid if stack.redis and stack.redis.process else None
        data = stack.postgres.data if stack.postgres else None
        yield stack.database_url, stack.redis_url, data, redis_pid
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--sends", type=int, default=400)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--body", default="**hello** @fanout0001, see INC-42 and `code`")
    parser.add_argument("--show-statements", action="store_true")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="write a cProfile of the measured sends to FILE (the database work then runs on "
        "the event loop's thread, so one profile holds all of it; its CPU figures are not to "
        "compare)",
    )
    parser.add_argument(
        "--no-unread", action="store_true", help="leave out the unread pushes (to tell costs apart)"
    )
    args = parser.parse_args()

    with _stack(args.stack) as (database_url, redis_url, pg_data, redis_pid):
        data_dir = Path(tempfile.mkdtemp(prefix="opsdeck-send-cost-data-"))
        try:
            return asyncio.run(
                _measure(args, database_url, redis_url, pg_data, redis_pid, data_dir)
            )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _measure(
    args: argparse.Namespace,
    database_url: str,
    redis_url: str,
    pg_data: Path | None,
    redis_pid: int | None,
    data_dir: Path,
) -> int:
    from sqlalchemy import event

    from opsdeck.accounts import service as accounts
    from opsdeck.app import create_app
    from opsdeck.chat import service
    from opsdeck.chat.events import NAMESPACE, ChatNamespace, SocketUser
    from opsdeck.chat.models import RoomVisibility
    from opsdeck.core.db import upgrade_database
    from opsdeck.core.security import Passwords
    from opsdeck.settings import Settings

    upgrade_database(database_url)
    env: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": secrets.token_urlsafe(48),
        "environment": "development",
        # The bench sends above a person's limit: one sender here.
        "chat_send_burst": 1_000_000,
    }
    if redis_url:
        env["redis_url"] = redis_url
    settings = Settings(**env)
    app = create_app(settings, check_migrations=False)
    factory = app.state.sessionmaker
    hub = app.state.sockets
    hub.loop = asyncio.get_running_loop()
    chat = hub.server.namespace_handlers[NAMESPACE]
    assert isinstance(chat, ChatNamespace)

    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
    with factory() as session:
        users = [
            accounts.create_user(
                session,
                passwords,
                username=f"fanout{index:04d}",
                email=f"fanout{index:04d}@example.com",
                password=secrets.token_urlsafe(18),
                role="member",
            )
            for index in range(args.members)
        ]
        session.commit()
        actors = [SocketUser(id=u.id, username=u.username, is_admin=False) for u in users]
        room = service.create_room(
            session, settings, actors[0], name="acks", visibility=RoomVisibility.PUBLIC
        )
        for actor in actors[1:]:
            service.join_room(session, settings, actor, room.id)
        session.commit()
        room_id = room.id

    statements: list[str] = []
    event.listen(
        app.state.engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_rest: statements.append(statement),
    )
    sender = actors[0]

    async def send(number: int) -> None:
        answer = await chat.trigger_event(
            "message:send",
            "sid-bench",
            {"room_id": room_id, "client_id": f"c-{number}", "body": args.body},
        )
        assert answer["ok"], answer

    # Patch in the session the socket would carry.
    async def get_session(_sid: str, namespace: str | None = None) -> dict[str, Any]:
        return {"user": sender}

    chat.get_session = get_session
    if args.no_unread:
        chat.unread.note = lambda *_args: None  # type: ignore[method-assign]

    for number in range(50):  # warm-up: caches, pools, the first unread push
        await send(-number - 1)
    await asyncio.sleep(0.5)
    statements.clear()

    profile = None
    if args.profile:
        import cProfile

        async def inline(function: Any, /, *call_args: Any, **kwargs: Any) -> Any:
            return function(*call_args, **kwargs)

        asyncio.to_thread = inline
        profile = cProfile.Profile()
        profile.enable()

    pg_pids = _postgres_pids(pg_data)
    others = [pid for pid in [*pg_pids, redis_pid] if pid]
    calibration = _calibration_ms()
    cpu0, others0, wall0 = time.process_time(), _cpu_seconds(others), time.monotonic()
    for number in range(args.sends):
        await send(number)
        if number % 50 == 49:
            await asyncio.sleep(UNREAD_WAIT)  # let the unread push of these go out
    await asyncio.sleep(UNREAD_WAIT)
    cpu = time.process_time() - cpu0
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    calibration = (calibration + _calibration_ms()) / 2
    other_cpu = _cpu_seconds(others) - others0
    wall = time.monotonic() - wall0
    per = args.sends
    sends_statements = len(statements)
    print(f"stack: {args.stack}; {args.sends} sends, room of {args.members}; body {args.body!r}")
    print(f"  statements per send (unread pushes included): {sends_statements / per:.2f}")
    print(f"  web process CPU per send:       {cpu / per * 1000:.3f} ms")
    if others:
        print(f"  PostgreSQL + Redis CPU per send: {other_cpu / per * 1000:.3f} ms")
        print(f"  server-side CPU per send:       {(cpu + other_cpu) / per * 1000:.3f} ms")
    print(f"  calibration: {calibration:.1f} ms of CPU per 1M-step loop (before and after)")
    print(f"  web process CPU per send / calibration: {cpu / per * 1000 / calibration:.3f}")
    print(f"  (wall {wall:.1f} s, not a figure to compare)")
    if args.show_statements:
        seen: dict[str, int] = {}
        for statement in statements:
            key = " ".join(statement.split())[:160]
            seen[key] = seen.get(key, 0) + 1
        for key, count in sorted(seen.items(), key=lambda item: -item[1]):
            print(f"  {count / per:6.2f}  {key}")
    return 0


UNREAD_WAIT = 0.4

if __name__ == "__main__":
    sys.exit(main())
