"""The one strict base of every validated input model (profiles, scenarios, specs).

Unknown keys are errors (a misspelt key must never be silently ignored), values are read-only
once validated, fields are filled by name or alias, NaN or infinity is refused in every float
field (a model never holds a non-finite number), and ``true``/``false`` is not read as 1/0 for
a number.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, ClassVar, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Base of validated input models: no unknown keys, frozen, finite floats only."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    # keys an earlier version read, each with the key that replaced it: a file that still writes
    # one is told the new key, where "unknown key" alone would leave the reader to guess it
    renamed_keys: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_keys(cls, data: Any) -> Any:
        """Refuse a key of :attr:`renamed_keys` (raises ``ValueError`` naming it and its new name)."""
        if isinstance(data, dict):
            old = sorted(set(data) & set(cls.renamed_keys))
            if old:
                raise ValueError("; ".join(f"{key}: this key is now called {cls.renamed_keys[key]}; rename it"
                                           for key in old))
        return data

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """Refuse ``true``/``false`` for a numeric field (raises ``ValueError`` naming the key)."""
        # Pydantic's lax mode reads true as 1 in an int or float field: max_guests = true would
        # run with one guest. Strict mode would also refuse TOML lists for tuples, so only this.
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                for key in {name, field.alias} - {None}:
                    if isinstance(data.get(key), bool) and _numeric(field.annotation):
                        raise ValueError(f"{key}: {str(data[key]).lower()} is not a number; write a number")
        return data

    def revalidated(self, **updates: Any) -> Self:
        """A copy with ``updates`` (by field name), validated as a new model is: the values given
        and the model's own checks (pydantic's ``ValidationError`` otherwise). The fields kept are
        not read again (nested models stay as validated), and a field the input left out stays
        left out (:attr:`model_fields_set`), as if the input had been written with the updates."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return self.model_validate({**kept, **updates})


def _numeric(annotation: Any) -> bool:
    """Whether a field's annotation is a number (``int``, ``float``, or an optional or union of them)."""
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in (int, float) for a in args)
    return False
