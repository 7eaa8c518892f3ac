"""The exercise machinery: every checker accepts its solution, answers stubs, and injects.

- each registered solution passes its checker (called as a student would, injection off);
- a stub answer — ``...`` anywhere in the arguments, or a function still raising
  ``NotImplementedError`` — is answered "Not yet" with the exercise's hint, printed, never raised;
- with ``WSLAB_INJECT_SOLUTIONS=1`` (what ``notebooks/conftest.py`` gives each notebook's kernel)
  a checker judges the package's solution whatever the cell passed;
- a wrong answer raises :class:`NotYet`, which IPython shows as one line.

The live checkers (a hub under jitter, a hub process killed and restarted) are marked slow.
"""

from __future__ import annotations

import inspect

import pytest

from wslab.lab.checkers import CHECKERS, NotYet
from wslab.lab.checkers.verdicts import INJECT_ENV, hint, is_stub
from wslab.lab.solutions import names, show, solution_for

LIVE = {"03.live_heartbeat", "04.live_bucket", "06.live_rate_limit", "07.reconnect"}
FAST = sorted(set(names()) - LIVE)


def _stub() -> None:
    raise NotImplementedError


def _stub_arguments(name: str) -> tuple[object, ...]:
    """What a committed cell passes: ``...`` for values, a NotImplementedError function for code."""
    args, _ = solution_for(name)
    return tuple(_stub_like(a) for a in args)


def _stub_like(value: object) -> object:
    if callable(value):
        return lambda *a, **k: _stub()
    if isinstance(value, dict):
        return dict.fromkeys(value, ...)
    return ...


async def _call(name: str, *args: object) -> object:
    result = CHECKERS[name](*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def test_every_exercise_has_a_checker_and_a_solution() -> None:
    assert sorted(CHECKERS) == names()


@pytest.mark.parametrize("name", FAST)
async def test_the_solution_passes_its_checker(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(INJECT_ENV, raising=False)
    args, kwargs = solution_for(name)
    result = CHECKERS[name](*args, **kwargs)
    if inspect.isawaitable(result):
        await result
    assert "✔ Correct!" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(names()))
async def test_a_stub_gets_not_yet_and_a_hint_never_an_exception(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(INJECT_ENV, raising=False)
    assert await _call(name, *_stub_arguments(name)) is None
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and len(out) > len("Not yet: this is still the stub. ")
    assert "Correct" not in out and "Traceback" not in out


@pytest.mark.parametrize("name", FAST)
async def test_injection_judges_the_package_solution_instead_of_the_stub(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(INJECT_ENV, "1")
    await _call(name, *_stub_arguments(name))
    out = capsys.readouterr().out
    assert "wslab.lab.solutions" in out and "✔ Correct!" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LIVE))
async def test_the_live_solutions_pass(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(INJECT_ENV, raising=False)
    args, _ = solution_for(name)
    run = await CHECKERS[name](*args)
    assert "✔ Correct!" in capsys.readouterr().out
    assert run is not None


def test_stubs_are_found_inside_answers() -> None:
    assert is_stub(...) and is_stub({"a": (1, ...)}) and is_stub([{"x": ...}])
    assert not is_stub({"a": 1}) and not is_stub(0) and not is_stub(None)


def test_a_wrong_answer_shows_as_one_line_in_ipython() -> None:
    error = hint("the mask bit is not set")
    assert isinstance(error, NotYet) and isinstance(error, AssertionError)
    rendered = error._render_traceback_()
    assert len(rendered) == 1 and "Not yet: the mask bit is not set" in rendered[0]


def test_a_solution_can_be_read_after_trying(capsys: pytest.CaptureFixture[str]) -> None:
    show("03.heartbeat")
    assert "PONG_TIMEOUT" in capsys.readouterr().out
    with pytest.raises(KeyError, match="no solution registered"):
        solution_for("99.nothing")
