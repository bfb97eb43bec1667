"""Docker's rules for ``rmi`` and ``image prune``: what is untagged, what is deleted, what refuses.

A port of moby's daemon/images/image_delete.go and image_prune.go (graphdriver image store),
with its messages word for word, because clients show them:

- By name: the reference is removed. If it was the image's only reference (one tag, with
  digests of that same repository) and a container uses the image, that needs ``force``
  ("unable to remove repository reference ... (must force)"). When the last tag of a repository
  goes, the repository's digest references go with it. If references remain, that is all;
  otherwise the image is deleted *quietly*: a conflict just leaves it.
- By ID (or a unique prefix): with a single reference, a stopped container blocks unless
  ``force``, and the reference is removed first; with several references, deleting needs
  ``force`` ("image is referenced in multiple repositories").
- Hard conflicts never yield to ``force``: child images, running containers. Soft ones do:
  remaining references, stopped containers.
- After a delete, with ``prune``, the parent image is deleted too if nothing else holds it.

Each step is one transaction of the image store; the layers an image no longer shares with
another image or a container are released right after its rows, top down, each reported as
``Deleted: <chain id>`` as dockerd's layer store reports them, unpacked or not (their snapshots,
where there are any, are removed then). Blob garbage collection is the service's, after the
whole operation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from dockyard.errdefs import Conflict, DockyardError
from dockyard.image.inspect import deleted, untagged
from dockyard.image.store import Image, normalize_tag_ref, parse_stored_ref, short_id
from dockyard.spec.digest import Digest
from dockyard.spec.reference import parse_normalized_named

if TYPE_CHECKING:
    from dockyard.image.service import ImageService


class ContainerUse(NamedTuple):
    """A container that uses an image, as ``in_use`` reports it."""

    id: str
    running: bool = False


InUse = Callable[[str], Iterable["ContainerUse | str"]]  # image id -> its containers


def no_containers(image_id: str) -> list[ContainerUse]:
    return []


# moby's conflictType bits
CHILD, RUNNING, ACTIVE_REFERENCE, STOPPED = 1, 2, 4, 8
HARD = CHILD | RUNNING
SOFT = ACTIVE_REFERENCE | STOPPED


class DeleteConflict(Conflict):
    """moby's imageDeleteConflict: ``conflict: unable to delete <id> (<must|cannot> be forced)
    - <why>``; ``used`` when a container is the reason."""

    def __init__(self, image_id: str, message: str, *, hard: bool, used: bool = False) -> None:
        forced = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {short_id(image_id)} ({forced}) - {message}")
        self.hard, self.used = hard, used


def is_image_id_prefix(image_id: str, candidate: str) -> bool:
    """isImageIDPrefix: ``candidate`` starts the ID, with or without its ``sha256:``."""
    return image_id.startswith(candidate) or image_id.partition(":")[2].startswith(candidate)


def is_single_reference(refs: list[str]) -> bool:
    """isSingleReference: at most one tag, and every reference in one repository."""
    if len(refs) <= 1:
        return len(refs) == 1
    single, canonical = None, set()
    for ref in refs:
        parsed = parse_stored_ref(ref)
        if parsed.digest:
            canonical.add(parsed.name)
        elif single is None:
            single = parsed
        else:
            return False
    if single is None:
        single = parse_stored_ref(refs[0])
    return len(canonical) == 1 and single.name in canonical


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class Deleter:
    """One rmi or prune: keeps the ``in_use`` answers for the duration, collects records."""

    def __init__(self, service: "ImageService", in_use: InUse) -> None:
        self.svc, self.store = service, service.store
        self._in_use = in_use
        self._users: dict[str, list[ContainerUse]] = {}
        self.reclaimed = 0  # bytes of the layer snapshots released

    def users(self, image_id: str) -> list[ContainerUse]:
        if image_id not in self._users:
            found = []
            for use in self._in_use(str(image_id)) or ():
                if isinstance(use, str):  # a bare id: a container that is not running
                    found.append(ContainerUse(use))
                else:  # a ContainerUse, a (id, running) pair, or anything with .id/.running
                    ident, running = (use.id, use.running) if hasattr(use, "id") else use
                    found.append(ContainerUse(str(ident), bool(running)))
            self._users[image_id] = found
        return self._users[image_id]

    # -- rmi ----------------------------------------------------------------------------------

    def remove(self, ref_or_id: str, *, force: bool, prune: bool) -> list[dict[str, str]]:
        image = self.svc.get(ref_or_id)
        image_id = image.id
        refs = self.store.refs_of(image_id)
        records: list[dict[str, str]] = []
        quiet = False
        if not is_image_id_prefix(image_id, ref_or_id):
            if not force and is_single_reference(refs) and (users := self.users(image_id)):
                raise Conflict(
                    f"conflict: unable to remove repository reference {_go_quote(ref_or_id)} "
                    f"(must force) - container {short_id(users[0].id)} is using its referenced "
                    f"image {short_id(image_id)}")
            if self._untag_name(ref_or_id, image_id, records):
                return records
            quiet = True
        elif is_single_reference(refs):
            conflict = self._conflict(image_id, HARD | (0 if force else STOPPED))
            if conflict is not None:
                raise conflict
            self._untag_all(image_id, records)
        self._delete(image_id, records, force=force, prune=prune, quiet=quiet)
        return records

    def _untag_name(self, name: str, image_id: Digest, records: list[dict[str, str]]) -> bool:
        """Remove the reference ``name``; True if the image keeps other references."""
        parsed = parse_normalized_named(name)
        shown = parsed.with_default_tag()
        with self.store.write():
            self.store.delete_ref(str(normalize_tag_ref(name)))
            records.append({"Untagged": shown.familiar()})
            refs = self.store.refs_of(image_id)
            if not parsed.digest:
                # the repository's last tag is gone: its digest references go too
                same = [parse_stored_ref(r) for r in refs]
                if not any(not r.digest and r.name == parsed.name for r in same):
                    kept = []
                    for ref, p in zip(refs, same):
                        if p.digest and p.name == parsed.name:
                            self.store.delete_ref(ref)
                            records.append(untagged(ref))
                        else:
                            kept.append(ref)
                    refs = kept
        self.svc._event("untag", image_id, image_id)
        return bool(refs)

    def _untag_all(self, image_id: Digest, records: list[dict[str, str]]) -> None:
        with self.store.write():
            for ref in self.store.refs_of(image_id):
                self.store.delete_ref(ref)
                records.append(untagged(ref))
        self.svc._event("untag", image_id, image_id)

    def _conflict(self, image_id: str, mask: int) -> DeleteConflict | None:
        if mask & CHILD and self.store.children(image_id):
            return DeleteConflict(image_id, "image has dependent child images", hard=True)
        users = self.users(image_id)
        running = next((u for u in users if u.running), None)
        if mask & RUNNING and running is not None:
            return DeleteConflict(image_id, "image is being used by running container "
                                  f"{short_id(running.id)}", hard=True, used=True)
        if mask & ACTIVE_REFERENCE and self.store.refs_of(image_id):
            return DeleteConflict(image_id, "image is referenced in multiple repositories",
                                  hard=False)
        stopped = next((u for u in users if not u.running), None)
        if mask & STOPPED and stopped is not None:
            return DeleteConflict(image_id, "image is being used by stopped container "
                                  f"{short_id(stopped.id)}", hard=False, used=True)
        return None

    def _is_dangling(self, image_id: str) -> bool:
        return not self.store.refs_of(image_id) and not self.store.children(image_id)

    def _delete(self, image_id: Digest, records: list[dict[str, str]], *, force: bool,
                prune: bool, quiet: bool) -> None:
        """imageDeleteHelper: delete unless a conflict says no (quietly, when ``quiet``)."""
        conflict = self._conflict(image_id, HARD | (0 if force else SOFT))
        if conflict is not None:
            if quiet and (not self._is_dangling(image_id) or conflict.used):
                return
            raise conflict
        image: Image = self.svc._by_id(image_id)
        with self.store.write():
            for ref in self.store.refs_of(image_id):
                self.store.delete_ref(ref)
                records.append(untagged(ref))
            self.store.delete_image(image_id)
        self.svc._event("delete", image_id, image_id)
        records.append(deleted(image_id))
        # A container of the image holds its layers (dockerd's RWLayer holds the image's top
        # layer, so `rmi -f` of an image a stopped container uses releases none); the snapshot
        # would refuse as well, but a layer never unpacked has no snapshot to refuse.
        if not self.users(image_id):
            for chain, usage in self.svc.release_layers(image, self.svc.images()):
                records.append(deleted(chain))
                self.reclaimed += usage
        if prune and image.parent and self.store.get_image(image.parent) is not None:
            self._delete(image.parent, records, force=False, prune=True, quiet=True)

    # -- prune --------------------------------------------------------------------------------

    def prune(self, dangling_only: bool, match: Callable[[Image], bool]) -> list[dict[str, str]]:
        """ImagesPrune: every head image (or every image) that ``match`` accepts and that can
        be deleted without force; conflicts and other failures skip the image."""
        images = self.svc.images()
        parents = {i.parent for i in images if i.parent}
        candidates = [i for i in images
                      if not (dangling_only and i.id in parents)
                      and not (not i.names and not i.digests and i.id in parents)
                      and match(i)]
        records: list[dict[str, str]] = []
        for image in candidates:
            refs = self.store.refs_of(image.id)
            if refs:
                if dangling_only and any("@" not in r for r in refs):
                    continue  # tagged: not dangling
                targets = refs
            else:
                targets = [image.id.encoded]
            for target in targets:
                try:
                    records += self.remove(target, force=False, prune=True)
                except DockyardError:
                    continue
        return records
