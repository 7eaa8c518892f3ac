"""Build the optional C acceleration of masking; everything else is in pyproject.toml.

``optional=True``: where no C compiler is available the install still succeeds and wslab uses
its pure-Python masking, which gives the same bytes.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wslab.foundation._speedups",
            sources=["wslab/foundation/_speedups.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
