"""The daemon core: containers, events, metadata; no HTTP (see docs/DESIGN.md)."""
