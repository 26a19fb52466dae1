"""The read-only MCP stdio server (``ops-trigger mcp``): tools, resources and dispatch
prompts over approved items only. ``mcp_server.main.main`` is the entry point; importing
this package loads nothing else."""
