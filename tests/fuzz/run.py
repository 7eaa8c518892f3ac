"""Coverage-guided fuzzing of one target with atheris (libFuzzer), seeded from the corpus.

    python tests/fuzz/run.py TARGET [libFuzzer flags...]

``TARGET`` is a name from :data:`tests.fuzz.targets.TARGETS`. The seed corpus is
``tests/fuzz/corpus/TARGET``; new interesting inputs go to ``--work DIR`` (default: a directory
under /tmp, so a local run never rewrites the committed corpus). libFuzzer flags pass through:
``-runs=N`` (inputs to try), ``-max_total_time=S``, ``-timeout=S`` (a hang is a crash),
``-rss_limit_mb=M`` (unbounded memory is a crash). A crash writes ``crash-*`` in the current
directory and exits non-zero; libFuzzer's last ``#N`` line says how many inputs it tried.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--work", help="directory for new corpus entries (default: a temp dir)")
    args, libfuzzer = parser.parse_known_args(argv)

    import atheris  # a test dependency; only this entry point needs it

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["wslab"]):
        import wslab.application.validation
        import wslab.foundation.frames
        import wslab.foundation.handshake
        import wslab.foundation.http
        import wslab.foundation.protocol
        import wslab.infrastructure.router  # noqa: F401
    from tests.fuzz.targets import TARGETS

    target = TARGETS[args.target]
    work = args.work or tempfile.mkdtemp(prefix=f"wslab-fuzz-{args.target}-")
    seeds = CORPUS / args.target
    atheris.Setup([sys.argv[0], *libfuzzer, work, str(seeds)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
