"""Workspaces and isolation: where a session's files live and how its commands run."""
