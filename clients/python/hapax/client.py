"""Client for Hapax's native completion API, on the standard library only (urllib, json).

    from hapax import Client

    client = Client("http://localhost:8080", api_key="...")
    answer = client.completion(messages=[{"role": "user", "content": "What is the capital of France?"}])
    print(answer.completion, answer.request_id)

    for event in client.stream(input="Tell me a story"):
        if event.type == "delta":
            print(event.text, end="", flush=True)

Every call sends an X-Request-ID (yours, or a fresh UUID) and retries reuse it. 429 and 503 answers are
retried at most ``max_retries`` times, after what Retry-After says or an exponential backoff with jitter;
a Retry-After longer than ``max_retry_delay`` is not waited for: the error is raised with its
``retry_after``. Failures are raised as HapaxError subclasses carrying ``status``, ``type`` and
``request_id``.
"""

from __future__ import annotations

import email.utils
import json
import random
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Union

__all__ = [
    "Client",
    "Completion",
    "Usage",
    "Delta",
    "Done",
    "HapaxError",
    "ValidationError",
    "AuthenticationError",
    "RateLimitError",
    "ProcessingError",
    "InternalError",
    "APIConnectionError",
    "APITimeoutError",
    "parse_retry_after",
]


class HapaxError(Exception):
    """A failed call. ``status`` is 0 when no answer arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        request_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.request_id = request_id
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.type} {self.status}: {self.message}{suffix}"


class ValidationError(HapaxError):
    pass


class AuthenticationError(HapaxError):
    pass


class RateLimitError(HapaxError):
    pass


class ProcessingError(HapaxError):
    pass


class InternalError(HapaxError):
    pass


class APIConnectionError(HapaxError):
    pass


class APITimeoutError(APIConnectionError):
    pass


_ERROR_CLASSES = {
    "ValidationError": ValidationError,
    "NotFoundError": ValidationError,
    "AuthenticationError": AuthenticationError,
    "RateLimitError": RateLimitError,
    "ProcessingError": ProcessingError,
    "InternalError": InternalError,
}

_RETRY_STATUSES = {429, 503}


def _error_class(type_: str, status: int):
    if type_ in _ERROR_CLASSES:
        return _ERROR_CLASSES[type_]
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ProcessingError
    return ValidationError


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After in seconds, from a number of seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "Usage":
        data = data or {}
        return cls(
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            total_tokens=int(data.get("total_tokens", 0)),
        )


@dataclass
class Completion:
    completion: str
    request_id: str
    provider: Optional[str] = None
    model: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: Usage = field(default_factory=Usage)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Completion":
        return cls(
            completion=data.get("completion", ""),
            request_id=data.get("request_id", ""),
            provider=data.get("provider"),
            model=data.get("model"),
            finish_reason=data.get("finish_reason"),
            usage=Usage.from_dict(data.get("usage")),
            raw=dict(data),
        )


@dataclass
class Delta:
    text: str
    type: str = "delta"


@dataclass
class Done(Completion):
    type: str = "done"


Event = Union[Delta, Done]


class _Response:
    """An accepted answer: status, headers and the open body."""

    def __init__(self, status: int, headers: Any, body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Client:
    """Talks to one Hapax gateway.

    base_url: where Hapax listens (no path). api_key: sent as X-API-Key when auth is on.
    path: the completion route (a route of your own such as /v1/marketing/completions works too).
    timeout: seconds per network operation. max_retries: retries after a 429 or 503.
    initial_retry_delay / max_retry_delay: backoff bounds in seconds.
    """

    def __init__(
        self,
        base_url: str = "http://localhost:8080",
        api_key: Optional[str] = None,
        *,
        path: str = "/v1/completions",
        timeout: float = 30.0,
        max_retries: int = 2,
        initial_retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        headers: Optional[Mapping[str, str]] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required, e.g. http://localhost:8080")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.path = path
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_retry_delay = initial_retry_delay
        self.max_retry_delay = max_retry_delay
        self.headers = dict(headers or {})
        self._sleep = sleep

    # -- public API -------------------------------------------------------------------------------

    def completion(
        self,
        messages: Optional[List[Mapping[str, str]]] = None,
        *,
        input: Optional[str] = None,
        function_description: Optional[str] = None,
        model: Optional[str] = None,
        request_id: Optional[str] = None,
        path: Optional[str] = None,
        **options: Any,
    ) -> Completion:
        """One completion: give ``messages`` or ``input``. Extra options (max_tokens, temperature, top_p) are sent as they are."""
        body = self._body(messages, input, function_description, model, options, stream=False)
        request_id = request_id or str(uuid.uuid4())
        response = self._send("POST", path or self.path, body, request_id, streaming=False)
        try:
            raw = response.body.read()
        finally:
            response.body.close()
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProcessingError("the gateway sent an answer that is not JSON", status=response.status, type="ProcessingError", request_id=request_id)
        return Completion.from_dict(data)

    def stream(
        self,
        messages: Optional[List[Mapping[str, str]]] = None,
        *,
        input: Optional[str] = None,
        function_description: Optional[str] = None,
        model: Optional[str] = None,
        request_id: Optional[str] = None,
        path: Optional[str] = None,
        **options: Any,
    ) -> Iterator[Event]:
        """A streamed completion: yields Delta events, then one Done event; a failed stream raises HapaxError."""
        body = self._body(messages, input, function_description, model, options, stream=True)
        request_id = request_id or str(uuid.uuid4())
        response = self._send("POST", path or self.path, body, request_id, streaming=True)
        return self._events(response, request_id)

    def health(self, request_id: Optional[str] = None) -> Dict[str, Any]:
        """The gateway's /health report (a 503 answer is a report too: ``report["status"]["global"]`` is False)."""
        request_id = request_id or str(uuid.uuid4())
        response = self._send("GET", "/health", None, request_id, streaming=False, accepted=(200, 503), max_retries=0)
        try:
            return json.loads(response.body.read())
        finally:
            response.body.close()

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _body(messages, input, function_description, model, options, stream: bool) -> Dict[str, Any]:
        body: Dict[str, Any] = dict(options)
        if messages is not None:
            body["messages"] = [dict(m) for m in messages]
        if input is not None:
            body["input"] = input
        if function_description is not None:
            body["function_description"] = function_description
        if model is not None:
            body["model"] = model
        body["stream"] = stream
        return body

    def _send(self, method: str, path: str, body: Optional[Dict[str, Any]], request_id: str, *, streaming: bool, accepted=(200,), max_retries: Optional[int] = None) -> _Response:
        url = self.base_url + (path if path.startswith("/") else "/" + path)
        headers = {"accept": "text/event-stream" if streaming else "application/json", **self.headers, "x-request-id": request_id}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        if self.api_key:
            headers["x-api-key"] = self.api_key
        retries = self.max_retries if max_retries is None else max_retries

        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                answer = urllib.request.urlopen(request, timeout=self.timeout)
                status, answer_headers, stream = answer.status, answer.headers, answer
            except urllib.error.HTTPError as failure:
                status, answer_headers, stream = failure.code, failure.headers, failure
            except (socket.timeout, TimeoutError) as failure:
                raise APITimeoutError(f"no answer from {url} within {self.timeout} s", status=0, type="TimeoutError", request_id=request_id) from failure
            except (urllib.error.URLError, OSError) as failure:
                reason = getattr(failure, "reason", failure)
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    raise APITimeoutError(f"no answer from {url} within {self.timeout} s", status=0, type="TimeoutError", request_id=request_id) from failure
                raise APIConnectionError(f"could not reach {url}: {reason}", status=0, type="ConnectionError", request_id=request_id) from failure

            if status in accepted:
                return _Response(status, answer_headers, stream)
            try:
                error = self._error(status, answer_headers, stream.read(), request_id)
            finally:
                stream.close()
            if status not in _RETRY_STATUSES or attempt >= retries:
                raise error
            backoff = min(self.max_retry_delay, self.initial_retry_delay * (2 ** attempt))
            delay = error.retry_after if error.retry_after is not None else backoff / 2 + random.random() * backoff / 2
            if delay > self.max_retry_delay:
                raise error
            self._sleep(delay)
            attempt += 1

    @staticmethod
    def _error(status: int, headers: Any, raw: bytes, request_id: str) -> HapaxError:
        info: Dict[str, Any] = {}
        try:
            parsed = json.loads(raw.decode("utf-8"))
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                info = parsed["error"]
        except ValueError:
            pass
        default_type = "RateLimitError" if status == 429 else "ProcessingError" if status >= 500 else "ValidationError"
        type_ = info.get("type") or default_type
        message = info.get("message") or f"HTTP {status}"
        cls = _error_class(type_, status)
        return cls(
            message,
            status=status,
            type=type_,
            request_id=info.get("request_id") or (headers.get("x-request-id") if headers else None) or request_id,
            details=info.get("details"),
            retry_after=parse_retry_after(headers.get("retry-after") if headers else None),
        )

    @staticmethod
    def _events(response: _Response, request_id: str) -> Iterator[Event]:
        saw_done = False
        try:
            for data in _sse_data(response.body):
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ProcessingError("the gateway sent a stream event that is not JSON", status=response.status, type="ProcessingError", request_id=request_id)
                kind = event.get("type")
                if kind == "error":
                    info = event.get("error") or {}
                    status = info.get("code") if isinstance(info.get("code"), int) else 502
                    type_ = info.get("type") or "ProcessingError"
                    raise _error_class(type_, status)(
                        info.get("message") or "the stream failed",
                        status=status,
                        type=type_,
                        request_id=info.get("request_id") or request_id,
                        details=info.get("details"),
                    )
                if kind == "delta":
                    yield Delta(text=event.get("text", ""))
                elif kind == "done":
                    saw_done = True
                    done = Completion.from_dict(event)
                    yield Done(**{k: getattr(done, k) for k in ("completion", "request_id", "provider", "model", "finish_reason", "usage", "raw")})
                    return
            if not saw_done:
                raise ProcessingError("the stream ended before its done event", status=response.status, type="ProcessingError", request_id=request_id)
        finally:
            response.body.close()


def _sse_data(body: Any) -> Iterator[str]:
    """The data of each Server-Sent Event (multi-line data joined with newlines); other fields are skipped."""
    data: List[str] = []
    while True:
        raw = body.readline()
        if not raw:
            break
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
    if data:
        yield "\n".join(data)
