"""A local, Slack-Web-API-compatible server (aiohttp) for the Slack sink tests.

Implements ``chat.postMessage`` and ``chat.update`` the way Slack answers them: HTTP 200 with
``{"ok": false, "error": ...}`` for API errors, HTTP 429 + ``Retry-After`` + ``ratelimited`` when
throttled. Accepts JSON and form bodies (form ``blocks`` is a JSON string) and requires
``Authorization: Bearer <token>``. Every call is recorded, including rejected ones.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(slots=True)
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    status: int
    response: dict[str, Any] = field(default_factory=dict)


class SlackAPIServer:
    """``await start()`` returns a base URL ending in ``/`` to pass as the SDK's ``base_url``."""

    def __init__(self, *, token: str = "xoxb-test-token", channel_id: str = "C0123", host: str = "127.0.0.1") -> None:
        self.token = token
        self.channel_id = channel_id
        self.host = host
        self.calls: list[Call] = []
        #: ts -> the message as last posted or updated
        self.messages: dict[str, dict[str, Any]] = {}
        self._ts = itertools.count(1)
        self._ratelimit_left = 0
        self._retry_after = "0"
        self._fail_left = 0
        self._fail_status = 500
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    def rate_limit(self, times: int, retry_after: float = 0) -> None:
        """Answer the next ``times`` calls with 429 and ``Retry-After: retry_after``."""
        self._ratelimit_left = times
        self._retry_after = f"{retry_after:g}"

    def fail_next(self, times: int, status: int = 500) -> None:
        """Answer the next ``times`` calls with an HTTP error status."""
        self._fail_left = times
        self._fail_status = status

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def start(self) -> str:
        if self.base_url is not None:
            return self.base_url
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self.base_url = f"http://{self.host}:{runner.addresses[0][1]}/api/"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.base_url = None

    async def __aenter__(self) -> SlackAPIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @staticmethod
    async def _args(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json(loads=orjson.loads)
            return dict(data) if isinstance(data, dict) else {}
        form = await request.post()
        args: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        for name in ("blocks", "attachments"):
            if isinstance(args.get(name), str):
                args[name] = orjson.loads(args[name])
        return args

    def _reply(self, call: Call, body: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
        call.status, call.response = status, body
        return web.json_response(body, status=status, headers=headers or None,
                                 dumps=lambda obj: orjson.dumps(obj).decode())

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        call = Call(method, args, dict(request.headers), 0)
        self.calls.append(call)
        if self._ratelimit_left > 0:
            self._ratelimit_left -= 1
            return self._reply(call, {"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": self._retry_after})
        if self._fail_left > 0:
            self._fail_left -= 1
            return self._reply(call, {"ok": False, "error": "internal_error"}, self._fail_status)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self._reply(call, {"ok": False, "error": "not_authed"})
        if auth.removeprefix("Bearer ") != self.token:
            return self._reply(call, {"ok": False, "error": "invalid_auth"})
        if method == "chat.postMessage":
            return self._reply(call, self._post_message(args))
        if method == "chat.update":
            return self._reply(call, self._update(args))
        return self._reply(call, {"ok": False, "error": "unknown_method"}, 404)

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = {"type": "message", "ts": ts, "text": args.get("text", ""), "blocks": args.get("blocks", [])}
        if args.get("thread_ts"):
            thread_ts = str(args["thread_ts"])
            if thread_ts not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            message["thread_ts"] = thread_ts
        self.messages[ts] = message
        return {"ok": True, "channel": self.channel_id, "ts": ts, "message": message}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel") != self.channel_id:
            return {"ok": False, "error": "channel_not_found"}
        ts = str(args.get("ts", ""))
        if ts not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        message = self.messages[ts]
        message["text"] = args.get("text", message["text"])
        if "blocks" in args:  # omitted blocks are kept, as on Slack
            message["blocks"] = args["blocks"]
        return {"ok": True, "channel": self.channel_id, "ts": ts, "text": message["text"], "message": message}
