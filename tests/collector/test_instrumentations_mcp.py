"""The MCP SDK's own spans: a real client talking to a real MCP server over stdio (a subprocess) names the
tool only in its span name (`MCP send tools/call read_file`), and the server's spans carry
`gen_ai.tool.name`; both are read as tool calls, and `tools/list` is not one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.collector.instrumented import Capture

mcp = pytest.importorskip("mcp")
mcp_otel = pytest.importorskip("mcp.shared._otel")

from mcp import Client, StdioServerParameters  # noqa: E402

SERVER = Path(__file__).with_name("mcp_files_server.py")


@pytest.fixture
def capture(monkeypatch):
    """The SDK takes its tracer from the global provider at import; point it at the test's provider."""
    capture = Capture({"service.name": "files-agent"})
    monkeypatch.setattr(mcp_otel, "_tracer", capture.provider.get_tracer("mcp-python-sdk"))
    return capture


def test_mcp_client_spans_name_the_tool_called(capture):
    async def call() -> str:
        async with Client(StdioServerParameters(command=sys.executable, args=[str(SERVER)])) as client:
            result = await client.call_tool("read_file", {"path": "/srv/notes.md"})
            return result.content[0].text

    assert asyncio.run(call()) == "contents of /srv/notes.md"
    records = {r.name: r for r in capture.records()}
    call_span = records["MCP send tools/call read_file"]
    assert (call_span.tool_name, call_span.operation, call_span.span_kind) == ("read_file", "execute_tool", "tool")
    assert call_span.fingerprint == "tool:read_file" and call_span.agent_id == "files-agent"
    assert records["MCP send tools/list"].tool_name == ""


def test_mcp_server_spans_name_the_tool_run(capture, monkeypatch):
    from mcp.server import MCPServer

    server = MCPServer("files")

    @server.tool()
    def read_file(path: str) -> str:
        return "contents"

    async def call() -> None:
        async with Client(server) as client:  # in-process: the server's own spans
            await client.call_tool("read_file", {"path": "/srv/notes.md"})

    asyncio.run(call())
    (tool,) = [r for r in capture.records() if r.tool_name]
    assert (tool.name, tool.tool_name, tool.operation) == ("tools/call read_file", "read_file", "execute_tool")
