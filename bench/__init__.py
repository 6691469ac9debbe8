"""Benchmarks and reliability runs of the WhatsApp channel (make bench; docs/benchmarks.md)."""
