"""Synchronous command-line tools (never imported by the Rasa server)."""
