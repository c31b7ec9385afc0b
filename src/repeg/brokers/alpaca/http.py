"""The HTTP transport details alpaca-py leaves open: it sets no timeout on its requests, and an answer nested
beyond the JSON decoder's depth escapes its decoding as a `RecursionError`; and why a request got no answer, told
without chaining the SDK's error."""

from __future__ import annotations

import re
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class Answer(requests.Response):
    """A response whose body, JSON nested beyond the decoder's depth, is refused as any body that is no JSON is
    (requests' `JSONDecodeError`: no answer the client can read, the request's outcome unknown), not by a bare
    `RecursionError` that its callers take for a defect (a submit's then went unresolved, the run failing)."""

    def json(self, **kwargs: Any) -> Any:
        try:
            return super().json(**kwargs)
        except RecursionError:
            raise requests.JSONDecodeError("answer nested too deep to decode", "", 0) from None


class TimeoutAdapter(HTTPAdapter):
    """Gives every request `timeout` (seconds, or a (connect, read) pair) unless the caller set one, and never
    retries on its own (a retried POST could submit an order twice; callers decide what to retry). Its responses
    are `Answer`s."""

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

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        response.__class__ = Answer  # requests' response, with `Answer.json` (a subclass adding no state)
        return response


#: urllib3's repr of the connection object in its messages (`<urllib3.connection.HTTPSConnection object at 0x..>: `).
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>: ")


def transport_reason(exc: requests.RequestException) -> str:
    """Why a request got no answer (the host and port, and refused, a name that does not resolve, a TLS failure,
    a timeout), as requests words it, without urllib3's object reprs. Errors are raised not chained to the SDK's
    (their frames hold the secret header), so this text is the only trace of the cause; requests never puts the
    request's headers in it."""
    return f"{type(exc).__name__}: {_OBJECT_REPR.sub('', str(exc))}"
