"""The one strict base of every validated input model (profiles, scenarios, specs).

Unknown keys are errors (a misspelt key must never be silently ignored), values are read-only
once validated, fields are filled by name or alias, and NaN or infinity is refused in every float
field: a model never holds a non-finite number.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Base of validated input models: no unknown keys, frozen, finite floats only."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)
