"""How every exercise checker answers: one success line, or "Not yet" with a hint.

A hint names what is wrong and where to look (the RFC section, the field), never the expected
answer itself. Checkers of new exercises use these helpers so that every chapter answers in the
same voice:

- :func:`hint` builds the :class:`NotYet` a checker raises for a wrong answer; in Jupyter it
  shows as one line, without a traceback through the checker's code;
- :func:`success` prints the verdict for a right answer;
- :func:`exercise` turns a checker into the function a notebook calls: an answer that is still
  the committed stub (``...`` or a function that raises :class:`NotImplementedError`) gets
  "Not yet" and the exercise's hint, printed, never an exception; and when the environment
  variable :data:`INJECT_ENV` is set (the course's own test run sets it), the checker judges the
  solution kept in :mod:`wslab.lab.solutions` instead of the stub, so that CI proves every
  checker accepts a right answer while no solution sits in a notebook.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "INJECT_ENV",
    "NotYet",
    "exercise",
    "hint",
    "is_stub",
    "solutions_injected",
    "success",
]

#: Set to ``1`` to make every checker judge the package's solution instead of the cell's answer.
INJECT_ENV = "WSLAB_INJECT_SOLUTIONS"

F = TypeVar("F", bound=Callable[..., Any])


class NotYet(AssertionError):
    """A wrong answer: the message is the hint. IPython shows it without a traceback."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of formatting the stack: the student needs the hint, not
        # the checker's internals.
        return [f"\x1b[31m{self.args[0]}\x1b[0m" if self.args else "Not yet"]


class _StubCalled(BaseException):
    """Raised through the checker when the student's function is still the stub.

    A ``BaseException`` so that checkers which turn any ``Exception`` of the student's code into
    a hint let it pass: a stub deserves the exercise's own hint, not "your function raised".
    """


def hint(message: str) -> NotYet:
    """The error a checker raises for a wrong answer: ``Not yet: <message>``."""
    return NotYet(f"Not yet: {message}")


def success(message: str) -> None:
    """Print the checker's one-line verdict for a right answer."""
    print(f"✔ Correct! {message}")


def solutions_injected() -> bool:
    """True when :data:`INJECT_ENV` asks checkers to judge the package's solutions."""
    return os.environ.get(INJECT_ENV, "") not in ("", "0", "false", "no")


def is_stub(value: object, _depth: int = 0) -> bool:
    """True if ``value`` is, or holds, the ``...`` a stub cell is committed with."""
    if value is Ellipsis:
        return True
    if _depth > 4:  # answers are small; a bound keeps a self-referencing value harmless
        return False
    if isinstance(value, dict):
        return any(is_stub(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(is_stub(v, _depth + 1) for v in value)
    return False


def _guard(value: Any) -> Any:
    """Wrap a student's function so that its ``NotImplementedError`` reaches :func:`exercise`."""
    if not callable(value) or isinstance(value, type):
        return value

    @functools.wraps(value)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            result = value(*args, **kwargs)
        except NotImplementedError as error:
            raise _StubCalled from error
        if result is Ellipsis:
            raise _StubCalled
        return result

    return guarded


def exercise(name: str, stub_hint: str) -> Callable[[F], F]:
    """Make ``checker`` the notebook's entry point for exercise ``name`` (see the module doc).

    ``stub_hint`` is what a student who has not started yet reads: what to write and where.
    """

    def decorate(checker: F) -> F:
        def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """The arguments to judge, or ``None`` after answering a stub."""
            if solutions_injected():
                from wslab.lab.solutions import solution_for  # the package's answers, CI only

                print(f"(checking the solution in wslab.lab.solutions for {name!r})")
                answer, options = solution_for(name)
                # Keywords a notebook passes are the exercise's setting (a measured capacity),
                # not the answer: the model answer is judged under the same setting.
                return answer, {**kwargs, **options}
            if is_stub(args) or is_stub(kwargs):
                print(f"Not yet: this is still the stub. {stub_hint}")
                return None
            return tuple(_guard(a) for a in args), {k: _guard(v) for k, v in kwargs.items()}

        def stub_called() -> None:
            print(f"Not yet: your function still raises NotImplementedError. {stub_hint}")

        if inspect.iscoroutinefunction(checker):

            @functools.wraps(checker)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                judged = prepare(args, kwargs)
                if judged is None:
                    return None
                try:
                    return await checker(*judged[0], **judged[1])
                except _StubCalled:
                    stub_called()
                    return None

            run_async.exercise_name = name  # type: ignore[attr-defined]
            return run_async  # type: ignore[return-value]

        @functools.wraps(checker)
        def run(*args: Any, **kwargs: Any) -> Any:
            judged = prepare(args, kwargs)
            if judged is None:
                return None
            try:
                return checker(*judged[0], **judged[1])
            except _StubCalled:
                stub_called()
                return None

        run.exercise_name = name  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]

    return decorate
