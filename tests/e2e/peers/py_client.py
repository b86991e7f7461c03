"""Test MCP client (official `mcp` SDK) for mcp-authbridge end-to-end tests.

    python py_client.py --url URL --key KEY [--call TOOL]

Connects over Streamable HTTP with `Authorization: Bearer KEY` as its only
custom header, lists tools, calls `whoami` (or TOOL), and prints one JSON line:
{"protocol_version": ..., "tools": [...], "whoami": <parsed tool text>}, or for
another TOOL {"protocol_version", "tools", "text": <its text>}.
The SDK's default mode probes `server/discover` (2026-07-28) first and falls
back to the `initialize` handshake if the server does not speak it.
Exits 1 with a message on stderr on any failure (never printing the key).
"""

import argparse
import asyncio
import json
import sys

import httpx2  # the HTTP client the mcp SDK (2.x) is built on
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


# HTTP statuses >= 400 seen, so a failure can say "HTTP 401" rather than the
# SDK's generic "Server returned an error response".
http_errors: list[str] = []


async def note_status(response: httpx2.Response) -> None:
    if response.status_code >= 400:
        http_errors.append(f"HTTP {response.status_code} for {response.request.method}")


async def run(url: str, key: str, tool: str) -> dict:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx2.Timeout(30.0),
        event_hooks={"response": [note_status]},
    )
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool(tool, {})
        if result.is_error:
            raise RuntimeError(f"{tool} returned an error result")
        text = next(c.text for c in result.content if c.type == "text")
        seen = {"whoami": json.loads(text)} if tool == "whoami" else {"text": text}
        return {"protocol_version": client.protocol_version, "tools": tools, **seen}


def describe(exc: BaseException) -> str:
    # anyio task groups wrap failures in ExceptionGroups; show the leaves.
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--call", default="whoami")
    args = p.parse_args()
    try:
        out = asyncio.run(run(args.url, args.key, args.call))
    except BaseException as exc:  # noqa: BLE001 - report every failure the same way
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        seen = f" [{', '.join(http_errors)}]" if http_errors else ""
        msg = f"py_client: failed against {args.url}: {describe(exc)}{seen}"
        print(msg.replace(args.key, "<key>"), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
