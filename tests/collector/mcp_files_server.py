"""A one-tool MCP server over stdio, for the MCP compatibility test (run as a subprocess)."""

from mcp.server import MCPServer

server = MCPServer("files")


@server.tool()
def read_file(path: str) -> str:
    return f"contents of {path}"


if __name__ == "__main__":
    server.run("stdio")
