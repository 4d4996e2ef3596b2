"""A multi grader's ``calculate_output``: arithmetic over its graders' scores, read as a Python
expression but evaluated by walking its syntax tree, so only numbers, the graders' names, + - *
/ ** %, and a few functions can appear (no attribute, call or name beyond those)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil,
    "exp": math.exp, "sqrt": math.sqrt, "log": math.log,
}  # fmt: skip
OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}  # fmt: skip
MAX_NODES = 200


class FormulaError(ValueError):
    pass


def check_formula(formula: str, names: set[str]) -> None:
    """Raise ValueError naming what is wrong with ``formula`` (pydantic reports it)."""
    try:
        _tree(formula, names)
    except FormulaError as err:
        raise ValueError(f"calculate_output: {err}") from None


def evaluate(formula: str, scores: dict[str, float]) -> float:
    """The formula's value for these scores; FormulaError for math that has none (1/0)."""
    tree = _tree(formula, set(scores))
    try:
        return float(_value(tree.body, scores))
    except (ArithmeticError, ValueError) as err:
        raise FormulaError(f"calculate_output has no value: {err}") from None


def _tree(formula: str, names: set[str]) -> ast.Expression:
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as err:
        raise FormulaError(f"not a formula: {err.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise FormulaError(f"longer than {MAX_NODES} terms")
    for node in nodes:
        if isinstance(node, ast.Name) and node.id not in names and node.id not in FUNCTIONS:
            raise FormulaError(f"{node.id!r} names no grader (graders: {', '.join(sorted(names))})")
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS and not node.keywords
        ):
            raise FormulaError(f"only {', '.join(FUNCTIONS)} can be called")
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Call)
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise FormulaError(f"{node.value!r} is not a number")
        elif not isinstance(node, allowed) and type(node) not in OPERATORS:
            raise FormulaError(f"{type(node).__name__} is not allowed")
    return tree


def _value(node: ast.AST, scores: dict[str, float]) -> float:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scores[node.id]
    if isinstance(node, ast.UnaryOp):
        return OPERATORS[type(node.op)](_value(node.operand, scores))
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, scores), _value(node.right, scores)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent over 64")
        return OPERATORS[type(node.op)](left, right)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return FUNCTIONS[node.func.id](*(_value(a, scores) for a in node.args))
