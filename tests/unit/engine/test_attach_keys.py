"""The daemon-side detach key matcher of attach (moby term.EscapeProxy)."""

from __future__ import annotations


def test_detach_keys_across_reads_are_held_back():
    from dockyard.engine.attach import DetachMatcher

    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)  # the ctrl-p may start the sequence: held
    assert m.feed(b"\x11rest") == (b"", True)
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"x\x10") == (b"x", False)
    assert m.feed(b"y") == (b"\x10y", False)  # broken off: released in order
    assert m.feed(b"\x10\x10\x11") == (b"\x10", True)
    assert DetachMatcher(b"").feed(b"\x10\x11") == (b"\x10\x11", False)
