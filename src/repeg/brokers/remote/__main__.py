"""`python -m repeg.brokers.remote SPEC.json --port-file PATH [--max-sessions N]`: serve simulator sessions on
127.0.0.1.

The spec file holds a `SessionSpec` as JSON (`symbols` with their start prices; optional `account`, `seed`,
`quotes_per_second`, `duration` as ISO 8601 e.g. "PT30M", `partial_rate`, `daily_vol`). `duration` is at most 366
days and `quotes_per_second x duration` at most 1,000,000 quotes a symbol (the in-process simulator's bound); a
spec past either is refused at start-up (exit 2) naming them. The chosen port is written to `--port-file` once the server
listens (atomically, so a waiting test never reads half a number). The server runs until it is terminated, and
keeps every session it creates until then (a crashed run's orders live on in it): it holds at most `--max-sessions`
(64 by default), and refuses a request naming a new session past that (the client's error says so).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from repeg.brokers.remote.server import DEFAULT_MAX_SESSIONS, Session, SimServer
from repeg.brokers.remote.sessions import SessionSpec, build_session
from repeg.errors import RepegError


async def _serve(
    spec: SessionSpec, port: int, port_file: Path | None, max_sessions: int = DEFAULT_MAX_SESSIONS
) -> None:
    async def factory(name: str) -> Session:
        return await build_session(spec, name)

    try:  # a spec no session can be built from is refused now, not at every request of every session
        await factory("start-up check")
    except (ValueError, RepegError) as exc:  # RepegError: the simulator's own typed refusal (ConfigError)
        raise ValueError(f"no session can be built from the spec: {exc}") from exc
    server = SimServer(factory, max_sessions=max_sessions)
    bound = await server.start(port)
    if port_file is not None:
        partial = port_file.with_suffix(".partial")
        partial.write_text(str(bound))
        os.replace(partial, port_file)
    await server.serve_forever()


def _port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535: bind() refused others with an OverflowError traceback."""
    try:
        port = int(text)
    except ValueError:
        port = -1  # refused below, saying what a port is (argparse would name this function)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return port


def _sessions(text: str) -> int:
    """A positive number of sessions (ASCII digits)."""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of sessions")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m repeg.brokers.remote")
    parser.add_argument("spec", type=Path, help="SessionSpec as JSON")
    parser.add_argument("--port", type=_port, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument(
        "--max-sessions",
        type=_sessions,
        default=DEFAULT_MAX_SESSIONS,
        help=f"most sessions held; a new one past it is refused (default {DEFAULT_MAX_SESSIONS})",
    )
    args = parser.parse_args()
    try:  # OSError: no such file, or unreadable
        spec = SessionSpec.model_validate_json(Path(args.spec).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # pydantic's ValidationError included: named, exit 2, no traceback
        parser.error(f"{args.spec}: {exc}")
    try:
        asyncio.run(_serve(spec, args.port, args.port_file, args.max_sessions))
    except ValueError as exc:
        parser.error(f"{args.spec}: {exc}")
    except OSError as exc:  # the port taken (bind names no file), or the port file not writable (named)
        where = (
            f"--port-file {args.port_file}"
            if exc.filename is not None
            else f"cannot serve on 127.0.0.1:{args.port}"
        )
        parser.error(f"{where}: {exc}")


if __name__ == "__main__":
    main()
