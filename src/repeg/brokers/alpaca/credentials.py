"""Alpaca API credentials: read from the environment or a config file outside the repository, never shown.

The secret is held as a pydantic `SecretStr`, so `repr`, `str`, logs and JSON dumps show `**********`. It is
revealed only at the two places that must send it: the REST client's headers and the stream's auth message.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from repeg.errors import ConfigError

ENV_KEY_ID = "APCA_API_KEY_ID"
ENV_SECRET_KEY = "APCA_API_SECRET_KEY"  # noqa: S105 - the variable's name, not a secret
#: Default credentials file: in the user's home, never in a checkout.
DEFAULT_CREDENTIALS_FILE = Path("~/.config/repeg/alpaca.toml")


class AlpacaCredentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(min_length=1)
    secret_key: SecretStr

    def __repr__(self) -> str:
        return f"AlpacaCredentials(key_id={self.key_id!r}, secret_key=SecretStr('**********'))"


def load_credentials(
    env: Mapping[str, str] | None = None, config_file: Path | None = None
) -> AlpacaCredentials:
    """Credentials from `APCA_API_KEY_ID`/`APCA_API_SECRET_KEY`, else (neither set) from `config_file` (TOML,
    `[alpaca]` table with `key_id` and `secret_key`; default `~/.config/repeg/alpaca.toml`). Only one of the two
    variables set is refused: the file's keys may be another account's.

    A config file inside a git checkout is refused, so that a secret is never one `git add` away from a commit.
    Raises `ConfigError` naming what is missing; the error never contains the secret, and no frame of its
    traceback holds it in a local (a logger rendering frames' locals, e.g. structlog's rich tracebacks, would
    show it): what reads the secret returns before anything is raised.
    """
    from_env = _from_environment(os.environ if env is None else env)
    if isinstance(from_env, ConfigError):
        raise from_env
    if from_env is not None:
        return from_env
    path = (config_file or DEFAULT_CREDENTIALS_FILE).expanduser()
    if not path.is_file():
        raise ConfigError(ENV_KEY_ID, None, f"set {ENV_KEY_ID} and {ENV_SECRET_KEY}, or write {path}")
    return _from_file(path)


def _from_environment(source: Mapping[str, str]) -> AlpacaCredentials | ConfigError | None:
    """Both keys, or None when neither is set; one without the other is refused (returned, not raised: this frame
    may hold the secret), never completed from the file, whose keys may be another account's."""
    key_id, secret = source.get(ENV_KEY_ID, ""), source.get(ENV_SECRET_KEY, "")
    if key_id and secret:
        return AlpacaCredentials(key_id=key_id, secret_key=SecretStr(secret))
    if key_id or secret:
        missing, given = (ENV_SECRET_KEY, ENV_KEY_ID) if key_id else (ENV_KEY_ID, ENV_SECRET_KEY)
        return ConfigError(missing, None, f"not set while {given} is: set both, or neither to read the file")
    return None


def _from_file(path: Path) -> AlpacaCredentials:
    if _inside_git_checkout(path):
        raise ConfigError(
            str(path), None, "credentials file is inside a git checkout; keep it outside the repository"
        )
    _refuse_shared(path)
    read = _read_file(path)
    if isinstance(read, ConfigError):
        raise read
    return read


def _refuse_shared(path: Path) -> None:
    """Refuse a file that group or others may read or write (as ssh refuses an unprotected private key): its
    secret would be theirs to read, or its keys theirs to swap for their own account's. POSIX modes only."""
    if os.name != "posix":
        return
    try:
        status = path.stat()
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read credentials file: {type(exc).__name__}") from None
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise ConfigError(str(path), None, _shared_advice(path, mode, status.st_uid))


def _shared_advice(path: Path, mode: int, owner: int) -> str:
    """What to do about a credentials file others may read or write: `chmod 600` when it is the user's; one of
    another user's (e.g. root's, shared through a group) the user cannot chmod, nor read once it is 600."""
    shared = f"credentials file is open to other users (mode {mode:04o})"
    if owner == os.getuid():
        return f"{shared}; make it yours alone: chmod 600 {path}"
    return (
        f"{shared} and owned by another user (uid {owner}); keep your keys in a file of your own (chmod 600), "
        f"or set {ENV_KEY_ID} and {ENV_SECRET_KEY}"
    )


#: The keys of a credentials file's `[alpaca]` table: any other (a tunable, an endpoint) is refused, not ignored.
_FILE_KEYS = frozenset({"key_id", "secret_key"})
_UNKNOWN_KEY = (
    "not read from a credentials file, which holds key_id and secret_key only (the adapter's tunables are an "
    "AlpacaSettings given from Python; the endpoint is --broker's)"
)


def _read_file(path: Path) -> AlpacaCredentials | ConfigError:
    """The file's credentials, or the refusal to raise (returned, not raised: this frame holds the secret)."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("alpaca", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return ConfigError(str(path), None, f"cannot read credentials file: {type(exc).__name__}")
    if not isinstance(table, dict):  # e.g. `alpaca = "..."`: named, its value not shown
        return ConfigError(f"{path}: alpaca", None, "must be a table holding key_id and secret_key")
    unknown = sorted(set(table) - _FILE_KEYS)
    if unknown:  # named, its value not shown
        return ConfigError(f"{path}: alpaca.{unknown[0]}", None, _UNKNOWN_KEY)
    key_id, secret = table.get("key_id"), table.get("secret_key")
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        return ConfigError(f"{path}: [alpaca]", None, "needs non-empty key_id and secret_key")
    return AlpacaCredentials(key_id=key_id, secret_key=SecretStr(secret))


def _inside_git_checkout(path: Path) -> bool:
    return any((parent / ".git").exists() for parent in path.resolve().parents)
