"""Tools a model may call: the built-ins, Python functions (`--functions FILE.py`) and the tools of
MCP servers (config.toml's `[mcp.servers]`), all as one `Toolbox` (`toolbox.py`).

Nothing here imports the `mcp` SDK until an MCP server is started (`mcp_client.py`).
"""
