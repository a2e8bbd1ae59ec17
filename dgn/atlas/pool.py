"""Scheduling items over a pool of Ray actors, with affinity and replacement of dead actors.

Affinity: an idle actor takes the next item of the source (target checkpoint)
it last loaded; when that source is used up it moves to the source with the
most items left that no other actor is working on. So each target is loaded
about once per actor that works on it, not once per item.

Replacement: an actor that dies (killed, OOM, node lost) is replaced by a
fresh one and its item goes back to the front of its queue, to be redone;
results come back only through the driver, so nothing is recorded twice.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable

from dgn.atlas.plan import Item
from dgn.errors import DGNError

MAX_RETRIES = 3  # deaths of actors while holding the same item


def actor_errors() -> tuple:
    import ray.exceptions as rex

    return tuple(getattr(rex, n) for n in ("RayActorError", "WorkerCrashedError", "ActorUnavailableError",
                                           "ObjectLostError", "OwnerDiedError") if hasattr(rex, n))


class ActorPool:
    """``make(i)`` → a Ray actor handle with ``render.remote(item)``."""

    def __init__(self, make: Callable[[int], object], n: int):
        self.make = make
        self.actors = [make(i) for i in range(n)]
        self.last: list[str | None] = [None] * n
        self.replaced = 0
        self.made = n

    def _pick(self, slot: int, queues: "OrderedDict[str, deque]", busy_keys: set) -> Item | None:
        key = self.last[slot]
        if key not in queues:
            free = [k for k in queues if k not in busy_keys]
            key = max(free or queues, key=lambda k: len(queues[k]))
        item = queues[key].popleft()
        if not queues[key]:
            del queues[key]
        self.last[slot] = key
        return item

    def run(self, items: list[Item], on_result: Callable[[Item, dict, int], None], log=print) -> None:
        import ray

        errors = actor_errors()
        queues: OrderedDict[str, deque] = OrderedDict()
        for it in items:
            queues.setdefault(it.source.key, deque()).append(it)
        inflight: dict = {}  # ref -> (slot, item)
        retries: dict[str, int] = {}
        idle = list(range(len(self.actors)))
        while queues or inflight:
            while idle and queues:
                slot = idle.pop(0)
                busy = {self.last[s] for s, _ in inflight.values()}
                item = self._pick(slot, queues, busy)
                inflight[self.actors[slot].render.remote(item)] = (slot, item)
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            slot, item = inflight.pop(ref)
            try:
                result = ray.get(ref)
            except errors as e:
                retries[item.id] = retries.get(item.id, 0) + 1
                if retries[item.id] > MAX_RETRIES:
                    raise DGNError(f"atlas item {item.id} lost its actor {retries[item.id]} times; giving up "
                                   f"({type(e).__name__})") from None
                log(f"atlas: actor {slot} died during {item.id} ({type(e).__name__}); replacing it and redoing "
                    "the item")
                try:
                    ray.kill(self.actors[slot])
                except Exception:  # noqa: BLE001 — already gone
                    pass
                self.actors[slot] = self.make(self.made)
                self.made += 1
                self.replaced += 1
                self.last[slot] = None
                queues.setdefault(item.source.key, deque()).appendleft(item)
                queues.move_to_end(item.source.key, last=False)
                idle.append(slot)
                continue
            except ray.exceptions.RayTaskError as e:
                cause = e.as_instanceof_cause()
                if isinstance(cause, DGNError):
                    raise DGNError(str(cause).splitlines()[-1].split(": ", 1)[-1]) from None
                raise
            idle.append(slot)
            on_result(item, result, slot)

    def shutdown(self) -> None:
        import ray

        for a in self.actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
