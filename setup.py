"""What pyproject.toml cannot say: the course as package data, and the optional C speedup.

- The course ships in the wheel as ``wslab._notebooks``, built straight from the repository's
  top-level ``notebooks/`` (``package_dir`` maps it), so the repository keeps one copy of the
  course and ``wslab lab`` finds it after a plain ``pip install`` (see ``wslab/course.py``).
  The package list is computed here because pyproject's ``packages.find`` cannot add a mapped
  package to what it finds.
- The C acceleration of masking is ``optional=True``: where no C compiler is available the
  install still succeeds and wslab uses its pure-Python masking, which gives the same bytes.
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=[*find_packages(include=["wslab", "wslab.*"]), "wslab._notebooks"],
    package_dir={"wslab._notebooks": "notebooks"},
    package_data={
        "wslab": ["web/*", "py.typed", "foundation/_speedups.pyi"],
        "wslab._notebooks": ["*.ipynb"],
    },
    ext_modules=[
        Extension(
            "wslab.foundation._speedups",
            sources=["wslab/foundation/_speedups.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ],
)
