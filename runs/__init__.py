"""Durable agent runs: the DBOS workflow, its chunk streams, and the run operations."""
