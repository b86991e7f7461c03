"""Test MCP server (official `mcp` SDK) for mcp-authbridge end-to-end tests.

    python py_server.py --port N --api-key VALUE [--header-name X-API-KEY] [--log FILE]

Serves Streamable HTTP on 127.0.0.1:N at /mcp. Requests whose API-key header
is not exactly VALUE get HTTP 401 before reaching the SDK. Serves the
2026-07-28 revision (header-routed `server/discover`, one POST per request) and
falls back to the stateless handshake-era transport for older clients.
--port 0 picks a free port. Prints `READY <port>` once listening; stdout and
stderr never carry header values (the --log file does, on purpose).
"""

import argparse
import asyncio
import hmac
import json
import socket
import sys

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings


def build_app(api_key: str, header_name: str, log_path: str | None):
    mcp = MCPServer("authbridge-e2e-py-server", log_level="WARNING")  # keep stderr quiet

    @mcp.tool()
    def whoami(ctx: Context) -> str:
        """Return the HTTP request headers this call arrived with, as JSON."""
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        return json.dumps({"headers": headers, "protocol_version": ctx.protocol_version})

    inner = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        # Stateless: no Mcp-Session-Id on the handshake-era fallback either. A
        # request carrying MCP-Protocol-Version: 2026-07-28 is routed to the
        # SDK's modern single-exchange entry regardless of this flag.
        stateless_http=True,
        # Plain JSON bodies instead of SSE where the SDK allows it.
        json_response=True,
        # The SDK's default Host/Origin allowlist for 127.0.0.1 would reject
        # requests whose Host the gateway rewrote; this peer is loopback-only.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    expected = api_key.encode()
    key_header = header_name.lower().encode()
    log_file = open(log_path, "a", buffering=1) if log_path else None  # line-buffered

    async def app(scope, receive, send):
        if scope["type"] != "http":  # lifespan: let the SDK start its session manager
            return await inner(scope, receive, send)
        raw = scope["headers"]
        if log_file:
            headers: dict[str, str] = {}
            for k, v in raw:  # repeated headers are joined, as HTTP allows
                k, v = k.decode("latin-1").lower(), v.decode("latin-1")
                headers[k] = f"{headers[k]}, {v}" if k in headers else v
            log_file.write(json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers}) + "\n")
        values = [v for k, v in raw if k.lower() == key_header]
        if len(values) != 1 or not hmac.compare_digest(values[0], expected):
            body = b'{"error":"unauthorized"}'
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await inner(scope, receive, send)

    return app


async def serve(args) -> None:
    # Bind first so --port 0 works and READY carries the real port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))
    except OSError as e:
        sys.exit(f"py_server: cannot bind 127.0.0.1:{args.port}: {e}")
    port = sock.getsockname()[1]
    app = build_app(args.api_key, args.header_name, args.log)
    # access_log off: uvicorn would otherwise print request lines to stderr.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # set after lifespan startup and listen()
        if task.done():
            await task
            sys.exit("py_server: uvicorn exited during startup")
        await asyncio.sleep(0.02)
    print(f"READY {port}", flush=True)
    await task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--header-name", default="X-API-KEY")
    p.add_argument("--log", help="append one JSON line {method, path, headers} per HTTP request")
    args = p.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
