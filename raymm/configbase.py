"""What every config section shares: strict pydantic sections, the YAML reader, the error type.

Kept apart from :mod:`raymm.config` so that method folders (``raymm/methods/<name>/config.py``)
can define their sections without importing the whole config.
"""

from __future__ import annotations

import re

import yaml
from pydantic import BaseModel, ConfigDict

from raymm.errors import InputError


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` as a string; accept exponent floats without a dot, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


class ConfigError(InputError):
    """A configuration file or override is invalid; the message names the key."""


def parse_yaml(text: str, source: str = "<text>"):
    """YAML -> Python objects; malformed YAML is a :class:`ConfigError` naming ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}:{where}: malformed YAML ({problem})") from None


class _Section(BaseModel):
    """A config section: unknown keys and wrong types are errors (no coercion of '3' to 3)."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)
