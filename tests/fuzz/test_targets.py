"""The fuzz targets in the normal suite: corpus replay, hypothesis, and a short atheris run.

Replaying ``corpus/<target>/`` keeps every input a fuzzer ever found interesting (and every
regression) passing. Hypothesis feeds each target random bytes and, for the validation layer,
structured messages that raw bytes rarely reach. The atheris run (coverage-guided, a fixed
number of inputs, in a subprocess because libFuzzer owns its process) proves the targets still
run under the fuzzer; it is skipped when atheris is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS, _validated
from wslab.application.validation import SCHEMAS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Inputs each target gets from atheris in the suite (a long local run uses -max_total_time).
CI_RUNS = 3000


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_corpus_replays(target: str) -> None:
    seeds = sorted((CORPUS / target).iterdir())
    assert seeds, f"no seed corpus for {target}"
    for seed in seeds:
        try:
            TARGETS[target](seed.read_bytes())
        except AssertionError as exc:  # pragma: no cover - names the failing file
            raise AssertionError(f"{seed.relative_to(ROOT)}: {exc}") from exc


@pytest.mark.parametrize("target", sorted(TARGETS))
@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(target: str, data: bytes) -> None:
    TARGETS[target](data)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 3, max_value=2**64)
    | st.floats(allow_nan=True)
    | st.text(max_size=80)
    | st.sampled_from(["lobby", "lobby\n", "\nlobby", "a" * 65, "dm:x", "", " "])
)
FIELDS = ("room", "content", "to_user", "limit", "before_seq", "since_seq", "with_user",
          "is_typing", "token")  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A message type and a body whose keys are mostly that type's own fields."""
    message_type = draw(st.sampled_from(sorted(SCHEMAS)))
    keys = st.sampled_from(sorted(SCHEMAS[message_type])) | st.sampled_from(FIELDS)
    return message_type, draw(st.dictionaries(keys, SCALARS | st.lists(SCALARS, max_size=3)))


@FUZZ
@given(message=messages())
def test_structured_messages_validate_or_refuse(message: tuple[str, dict[str, Any]]) -> None:
    """A value that passes validation is within its documented range; a refusal is bounded."""
    _validated(*message)


def test_room_name_with_trailing_newline_is_refused() -> None:
    """Found by the structured fuzzer: ``$`` matched before a final newline, so "lobby\\n"
    was a valid room name distinct from "lobby" (and a line break in every log of it)."""
    from wslab.application.validation import validate
    from wslab.foundation.errors import ValidationError

    with pytest.raises(ValidationError):
        validate("room:join", {"room": "lobby\n"})


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_short_run(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(HERE / "run.py"), target, "--work", str(tmp_path),
               f"-runs={CI_RUNS}", "-timeout=10", "-rss_limit_mb=1024", f"-seed={len(target)}"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {CI_RUNS} runs" in result.stderr
