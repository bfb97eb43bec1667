"""snapshot layer (see docs/DESIGN.md)."""
