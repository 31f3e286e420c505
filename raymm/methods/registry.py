"""Method name -> method. Adding a method is one line here (plus its folder, conf file, tests and
README section)."""

from __future__ import annotations

from raymm.methods.base import Method
from raymm.methods.freedom import METHOD as FREEDOM
from raymm.methods.kdsr import METHOD as KDSR
from raymm.methods.lattice import METHOD as LATTICE
from raymm.methods.lightgcn import METHOD as LIGHTGCN
from raymm.methods.odmt import METHOD as ODMT
from raymm.methods.promptmm import METHOD as PROMPTMM
from raymm.methods.ptmrec import METHOD as PTMREC
from raymm.methods.sasrec import METHOD as SASREC
from raymm.methods.sgfd import METHOD as SGFD

METHODS: dict[str, Method] = {m.name: m for m in (LIGHTGCN, PROMPTMM, SGFD, SASREC, KDSR, ODMT, PTMREC, FREEDOM, LATTICE)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        from raymm.configbase import ConfigError

        raise ConfigError(f"method.name: unknown method {name!r} (known: {sorted(METHODS)})")
    return METHODS[name]
