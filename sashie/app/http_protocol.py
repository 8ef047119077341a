"""The HTTP connection as `sashie serve` runs it: uvicorn's h11 protocol, with two guards it
lacks. A request whose line or headers are too long gets a clean 414 or 431 (uvicorn closed
the connection while the client was still sending, which the client saw as a reset with no
answer), and a client has HEAD_SECONDS to finish a request's headers (uvicorn held a
connection that never finished them forever)."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEAD_BYTES = 16 * 1024  # a request line and its headers; a longer URL is refused (414)
HEAD_SECONDS = 10.0  # to send a request's headers, from the connection or the last answer
LINGER_SECONDS = 2.0  # reading (and dropping) what a refused client still sends


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a size and a deadline for each request's head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and drop, so the client gets our answer, not a reset
        if self.conn.their_state is h11.IDLE:
            head = self.conn.trailing_data[0] + data
            end = head.find(b"\r\n\r\n")
            if (end == -1 and len(head) > MAX_HEAD_BYTES) or end > MAX_HEAD_BYTES:
                line_ends = head.find(b"\r\n")
                too_long_line = line_ends == -1 or line_ends > MAX_HEAD_BYTES
                self._refuse(414 if too_long_line else 431)
                return
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._stop_waiting()  # the head is in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    def _await_head(self) -> None:
        self._stop_waiting()
        self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _stop_waiting(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer `status` in one line, then read and drop what still comes for a moment
        before closing (closing with unread data makes the system send a reset)."""
        self._refused = True
        self._stop_waiting()
        message = {
            408: "the request's headers did not arrive in time",
            414: f"the URL is too long (at most {MAX_HEAD_BYTES // 1024} KB)",
            431: f"the request's headers are too long (at most {MAX_HEAD_BYTES // 1024} KB)",
        }[status]
        body = f'{{"error": "{message}"}}'.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def uvicorn_settings() -> dict[str, Any]:
    """What `uvicorn.run` / `uvicorn.Config` take to serve with these guards."""
    return {"http": GuardedH11Protocol, "h11_max_incomplete_event_size": 4 * MAX_HEAD_BYTES}
