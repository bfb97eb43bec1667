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
            cfg = merge_commit_config(config, c.config) if config else dict(c.config)
            cfg.pop("Image", None)
            image = await asyncio.to_thread(
                commit_image, self.engine.images, c.image_id, upper, form=form,
                container_config=cfg, changes=list(changes), comment=comment, author=author,
                created_by=c.command(), names=names, container_id=c.id,
                run_config=dict(c.config))
            # before the unpause, as dockerd: pause, (image) tag, commit, unpause
            for name in names:  # moby's TagImage logs it (actor: the image)
                self.engine.events.emit("image", "tag", str(image.id),
                                        {**image.labels, "name": _familiar(name)})
            self._emit(c, "commit", comment=comment, imageID=str(image.id),
                       imageRef=_familiar(names[0]) if names else "")
        finally:
            if paused_here:
                await self.unpause(c.id)
        return str(image.id)

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        handle = self._handles.get(c.id)
        if handle is None or not c.state.Running:
            raise Conflict(f"Container {c.id} is not running")
        await handle.resize(height, width)
        self._emit(c, "resize", height=str(height), width=str(width))


def _familiar(name: str) -> str:
    from dockyard.spec.reference import parse_normalized_named

    return parse_normalized_named(name).with_default_tag().familiar()


def merge_commit_config(user: dict, container: dict) -> dict:
    """A commit's config from the request body, completed from the container's (moby's
    daemon/commit.go merge): what the body leaves empty comes from the container; Env,
    Labels, ExposedPorts and Volumes get the container's entries the body does not name."""
    out = dict(user)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key):
            out[key] = container.get(key) or ""
    env = list(out.get("Env") or [])
    names = {e.partition("=")[0] for e in env}
    out["Env"] = env + [e for e in container.get("Env") or [] if e.partition("=")[0] not in names]
    for key in ("Labels", "ExposedPorts", "Volumes"):
        theirs = container.get(key) or {}
        if out.get(key) or theirs:
            out[key] = {**theirs, **(out.get(key) or {})}
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        out["Entrypoint"] = container.get("Entrypoint")
    if out.get("Healthcheck") is None and container.get("Healthcheck") is not None:
        out["Healthcheck"] = container["Healthcheck"]
    return out
