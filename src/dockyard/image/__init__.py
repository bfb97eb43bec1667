"""image layer (see docs/DESIGN.md)."""
