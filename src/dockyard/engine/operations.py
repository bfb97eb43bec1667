"""Container operations that are not lifecycle transitions: commit and resize.

A mixin of `ContainerService` (containers.py), which provides `get`, `pause`, `unpause`,
`_handles`, `_emit` and `engine`.
"""

from __future__ import annotations

import asyncio

from dockyard.errdefs import Conflict


class ContainerOpsMixin:
    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                     author: str = "", pause: bool = True, changes: list[str] = (),
                     config: dict | None = None) -> str:
        """`docker commit`: the container's writable layer as a new image on its image."""
        from dockyard.image.commit import commit_image, writable_dir

        c = self.get(ref)
        paused_here = pause and c.state.Running and not c.state.Paused
        if paused_here:
            await self.pause(c.id)
        try:
            mounts = self.engine.images.snapshots.mounts(c.snapshot_key)
            upper, form = writable_dir(mounts)
            names = [f"{repo}:{tag}" if tag else repo] if repo else []
            cfg = dict(config) if config else dict(c.config)
            cfg.pop("Image", None)
            image = await asyncio.to_thread(
                commit_image, self.engine.images, c.image_id, upper, form=form,
                container_config=cfg, changes=list(changes), comment=comment, author=author,
                created_by=c.command(), names=names)
        finally:
            if paused_here:
                await self.unpause(c.id)
        self._emit(c, "commit", comment=comment)
        return str(image.id)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        handle = self._handles.get(c.id)
        if handle is None or not c.state.Running:
            raise Conflict(f"Container {c.id} is not running")
        await handle.resize(height, width)
        self._emit(c, "resize", height=str(height), width=str(width))
