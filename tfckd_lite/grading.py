"""Checks used by the autograder cells of the graded course assignments.

Notebooks: assignments/source/a1_time_relation/a1_time_relation.ipynb,
a2_calibrated_set_loss, a3_fusion_step, a4_ablation and a5_seed_statistics (the nbgrader
course in ``notebooks/assignments/``; its README is the instructor guide).

An autograder cell should fail with a message that tells a student what is wrong, not with a
bare ``assert`` or a wall of numbers. These helpers raise ``AssertionError`` (which nbgrader
counts as a failed test) with such a message:

* :func:`assert_matches` compares a student's tensor with the library's result: type, shape,
  then values with ``torch.testing.assert_close``;
* :func:`assert_raises` checks that bad input is refused with a specific exception type;
* :func:`assert_own_work` fails when a student's function calls the library function it is
  meant to re-implement (a nudge, not a security measure: the library is installed).
"""

from __future__ import annotations

import types
from typing import Callable

import torch

#: Package whose functions a student's solution must not call (it holds the reference answers).
LIBRARY = "tfckd_lite"


def assert_matches(actual, expected: torch.Tensor, what: str, *, rtol: float | None = None,
                   atol: float | None = None) -> None:
    """Fail with a readable message unless ``actual`` equals ``expected`` (type, shape, values).

    Notebook: assignments/source/a1_time_relation/a1_time_relation.ipynb

    ``what`` names the quantity in the message (e.g. ``"time_relation(x)"``). ``rtol``/``atol``
    default to ``torch.testing.assert_close``'s tolerances for the dtype (both or neither).
    """
    if not isinstance(expected, torch.Tensor):
        raise TypeError(f"assert_matches: expected must be a torch.Tensor, got "
                        f"{type(expected).__name__}")
    if (rtol is None) != (atol is None):
        raise ValueError("assert_matches: give both rtol and atol, or neither")
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{what} should return a torch.Tensor, but it returned "
                             f"{type(actual).__name__}")
    if actual.shape != expected.shape:
        raise AssertionError(f"{what} has shape {tuple(actual.shape)}, but the expected shape is "
                             f"{tuple(expected.shape)}")
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{what} has dtype {actual.dtype}, expected {expected.dtype} (keep "
                             f"the dtype of the input)")
    torch.testing.assert_close(
        actual.detach(), expected.detach(), rtol=rtol, atol=atol,
        msg=lambda detail: f"{what} differs from the reference result.\n{detail}")


def assert_raises(exception: type[BaseException], function: Callable, *args,
                  what: str | None = None, **kwargs) -> BaseException:
    """Fail unless ``function(*args, **kwargs)`` raises ``exception``; return the exception.

    Notebook: assignments/source/a1_time_relation/a1_time_relation.ipynb

    A ``NotImplementedError`` (an unanswered stub) is re-raised as it is, so that it is what the
    student sees; any other exception type fails with a message naming both types.
    """
    label = what or f"{getattr(function, '__name__', 'the function')}(...)"
    try:
        function(*args, **kwargs)
    except Exception as error:
        # An unanswered stub must surface as itself, even though NotImplementedError is a
        # RuntimeError: a stub never "raises the right error".
        if isinstance(error, NotImplementedError) and exception is not NotImplementedError:
            raise
        if isinstance(error, exception):
            return error
        raise AssertionError(f"{label} should raise {exception.__name__}, but it raised "
                             f"{type(error).__name__}: {error}") from error
    raise AssertionError(f"{label} should raise {exception.__name__} for this input, but it "
                         f"returned normally")


def _referenced_names(code: types.CodeType) -> set[str]:
    """Global and attribute names used by a code object and every function nested in it."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _referenced_names(constant)
    return names


def _from_library(value) -> str | None:
    """The dotted name of ``value`` if it is a module or callable of the library, else None."""
    if isinstance(value, types.ModuleType):
        name = value.__name__
    elif callable(value):
        name = f"{getattr(value, '__module__', '') or ''}.{getattr(value, '__qualname__', '')}"
    else:
        return None
    return name if name == LIBRARY or name.startswith(LIBRARY + ".") else None


def assert_own_work(function: Callable, allowed: tuple[str, ...] = ()) -> None:
    """Fail if ``function`` refers to a module or callable of ``tfckd_lite`` by a global name.

    Notebook: assignments/source/a1_time_relation/a1_time_relation.ipynb

    Looks at the global names the function's code (and any function defined inside it) uses and
    resolves them in the function's globals. ``allowed`` lists dotted names that may be used
    (e.g. a helper the assignment hands out). Aliases are caught; calls hidden behind
    ``getattr`` or ``importlib`` are not: this is a reminder for honest students, not a guard.
    """
    if not isinstance(function, types.FunctionType):
        raise TypeError(f"assert_own_work: expected a Python function, got "
                        f"{type(function).__name__}")
    borrowed = set()
    for name in _referenced_names(function.__code__):
        if name not in function.__globals__:
            continue
        source = _from_library(function.__globals__[name])
        if source is not None and source not in allowed:
            borrowed.add(f"{name} (= {source})")
    if borrowed:
        raise AssertionError(f"{function.__name__} uses the library's own implementation: "
                             f"{', '.join(sorted(borrowed))}. Write it yourself with torch "
                             f"operations; the tests compare your result with the library.")
