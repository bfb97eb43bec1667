"""Volumes: data that outlives containers.

``store`` keeps each volume's record (name, driver, labels, options) in the daemon's SQLite
database; ``local`` is Docker's local driver (a directory under ``<data-root>/volumes``, or a
filesystem mounted there from ``type``/``device``/``o`` options); ``plugin`` speaks Docker's
volume plugin protocol to remote drivers; ``service`` ties them together with references
(which containers use a volume), mounts counted per user, and export/import as tar streams.
"""
