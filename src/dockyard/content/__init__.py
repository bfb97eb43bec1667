"""content layer (see docs/DESIGN.md)."""
