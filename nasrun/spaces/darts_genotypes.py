"""The DARTS text notation (`parse_genotype`, `format_genotype`) and the published cells in it, loadable by name: `published_genotype("DARTS_V2")`, or as an
architecture `"DARTS_V2"` wherever the darts space reads one.

DARTS_V1 / DARTS_V2: the first- and second-order DARTS cells (Liu et al., 2019). PC_DARTS: PC-DARTS's
CIFAR-10 cell (Xu et al., 2020). NASNet (Zoph et al., 2018) and AmoebaNet (Real et al., 2019) have
5 nodes and use sep_conv_7x7 / conv_7x1_1x7; build them with the network directly, or in the space
with `search_space.nodes=5` and those ops added to `search_space.ops`.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from nasrun.errors import InvalidArchitecture
from nasrun.nets.darts import CELL_TYPES, GENOTYPE_KEYS, check_genotype

PUBLISHED = {
    "DARTS_V1": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
        "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
    "DARTS_V2": (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    ),
    "PC_DARTS": (
        "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
        "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
        "normal_concat=range(2, 6), "
        "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], "
        "reduce_concat=range(2, 6))"
    ),
    "NASNet": (
        "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0), "
        "('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), "
        "('sep_conv_3x3', 1), ('skip_connect', 1)], normal_concat=[2, 3, 4, 5, 6], "
        "reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0), "
        "('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2), "
        "('sep_conv_3x3', 2), ('max_pool_3x3', 1)], reduce_concat=[4, 5, 6])"
    ),
    "AmoebaNet": (
        "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), "
        "('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1), "
        "('skip_connect', 0), ('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], "
        "reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), "
        "('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), "
        "('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])"
    ),
}


def published_genotype(name: str) -> dict:
    """A published cell as a genotype dict."""
    if name not in PUBLISHED:
        raise InvalidArchitecture(f"darts: no published genotype '{name}' (known: {sorted(PUBLISHED)})")
    return parse_genotype(PUBLISHED[name])


# --- the published text notation ---------------------------------------------------------------------
def parse_genotype(text: str) -> dict:
    """Parse `Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)` without eval():
    every field must be a literal (lists/tuples of strings and ints) or `range(a, b)`."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise InvalidArchitecture(f"darts: cannot parse genotype text ({err.msg}): {text[:80]!r}") from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise InvalidArchitecture(f"darts: genotype text must be a Genotype(...) call, got {text[:80]!r}")
    if len(call.args) > len(GENOTYPE_KEYS):
        raise InvalidArchitecture(f"darts: Genotype(...) takes at most {len(GENOTYPE_KEYS)} fields")
    fields = dict(zip(GENOTYPE_KEYS, call.args))
    for keyword in call.keywords:
        if keyword.arg not in GENOTYPE_KEYS or keyword.arg in fields:
            raise InvalidArchitecture(f"darts: unexpected or repeated Genotype field {keyword.arg!r}")
        fields[keyword.arg] = keyword.value
    return check_genotype({name: _literal(name, node) for name, node in fields.items()})


def _literal(name: str, node: ast.AST) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 2:
        bounds = [_literal(name, arg) for arg in node.args]
        if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            return list(range(*bounds))
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise InvalidArchitecture(f"darts: Genotype field '{name}' must be a literal list or range(a, b)") from None
    return json.loads(json.dumps(value))  # tuples → lists


def format_genotype(arch: Any) -> str:
    """The published notation of a genotype (what DARTS code prints and its genotypes.py holds)."""
    genotype = check_genotype(arch)
    parts = []
    for cell in CELL_TYPES:
        pairs = ", ".join(f"('{op}', {source})" for op, source in genotype[cell])
        parts += [f"{cell}=[{pairs}]", f"{cell}_concat={genotype[cell + '_concat']}"]
    return f"Genotype({', '.join(parts)})"
