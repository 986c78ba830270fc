"""The agent: run loop, model providers, tools and stream encoding (no web framework imports)."""
