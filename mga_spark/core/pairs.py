"""Genre-audience pairs that do not come from this run's GA answer: supplied ones (`ga.pairs`,
`input.pairs_column`) and the ones a previous run already used (append mode).

Slots of a chunk, in pair-index order: the supplied pairs (config first, then the document's own),
then the pairs the model proposes. When the supplied pairs fill every slot, no GA request is sent.
A supplied pair that is malformed, or repeats a pair before it or a pair of the previous run,
is that slot's reject at stage "ga"; the other slots go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError

from mga_spark.config import GAConfig, PairSpec, pair_key
from mga_spark.schema import Audience, Failure, GAPair, Genre, PairSource, Reason, short

Key = tuple[str, str]


@dataclass(frozen=True)
class Slot:
    """A supplied slot: a pair (or why it is unusable) and where it came from."""

    pair: GAPair | Failure
    source: PairSource


@dataclass
class History:
    """What previous runs did for the documents of one unit (append mode)."""

    offset: int = 0  # pair index of this run's first slot: previous runs' slots come before it
    used: dict[tuple[str, int], list[GAPair]] = field(default_factory=dict)  # (doc, chunk)

    def for_chunk(self, doc_id: str, chunk: int) -> list[GAPair]:
        return self.used.get((doc_id, chunk), [])


def key_of(pair: GAPair) -> Key:
    return pair_key(pair.genre.title, pair.audience.title)


def to_pair(spec: PairSpec) -> GAPair:
    return GAPair(genre=Genre(title=spec.genre.title, description=spec.genre.description),
                  audience=Audience(title=spec.audience.title,
                                    description=spec.audience.description))


def read_column(value: object) -> list | Failure:
    """The items of a document's pairs column: a list, a {"pairs": [...]} object, JSON text of
    either, or null (no pairs). Anything else is a Failure for the whole document."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value, strict=False)
        except ValueError as e:
            return Failure(Reason.INVALID_PAIRS, short(f"pairs column is not JSON: {e}"))
    if isinstance(value, dict) and isinstance(value.get("pairs"), list):
        value = value["pairs"]
    if not isinstance(value, list):
        kind = type(value).__name__
        return Failure(Reason.INVALID_PAIRS, f"pairs column holds a {kind}, not a list of pairs")
    return value


def _item(item: object, n: int) -> GAPair | Failure:
    try:
        return to_pair(PairSpec.model_validate(item))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        blank = err["type"] in ("string_too_short", "value_error") and where.endswith("title")
        reason = Reason.GA_EMPTY_FIELD if blank else Reason.GA_INVALID
        return Failure(reason, short(f"supplied pair {n}: {where}: {err['msg']}"))


def supplied(ga: GAConfig, column: list) -> tuple[list[Slot], int]:
    """The supplied slots (at most ga.num_pairs) and how many column pairs did not fit."""
    slots = [Slot(to_pair(p), PairSource.CONFIG) for p in ga.pairs]
    room = ga.num_pairs - len(slots)
    slots += [Slot(_item(x, i + 1), PairSource.INPUT) for i, x in enumerate(column[:room])]
    return slots, max(0, len(column) - room)


def check_repeats(slots: list[GAPair | Failure], taken: dict[Key, str], first: int
                  ) -> list[GAPair | Failure]:
    """Slots with pairs already in `taken` (key -> where it was used) made GA_DUPLICATE_PAIR
    failures; the accepted pairs are added to `taken`. `first`: number of the first slot."""
    out: list[GAPair | Failure] = []
    for n, slot in enumerate(slots, first):
        if isinstance(slot, GAPair):
            key = key_of(slot)
            if key in taken:
                slot = Failure(Reason.GA_DUPLICATE_PAIR, short(
                    f"pair {n} ({slot.genre.title!r} for {slot.audience.title!r}) repeats "
                    f"{taken[key]}"))
            else:
                taken[key] = f"pair {n}"
        out.append(slot)
    return out

