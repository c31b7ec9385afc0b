"""The one HTTP transport detail alpaca-py leaves open: it sets no timeout on its requests."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter


class TimeoutAdapter(HTTPAdapter):
    """Gives every request `timeout` (seconds, or a (connect, read) pair) unless the caller set one, and never
    retries on its own (a retried POST could submit an order twice; callers decide what to retry)."""

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(  # noqa: PLR0917 - the signature requests defines
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=timeout or self._timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )
