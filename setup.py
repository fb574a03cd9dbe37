"""The project's metadata is in pyproject.toml. This file lists its packages (``alfine`` with every subpackage
under lib/alfine, and ``alfine_tools``) and declares the optional C modules ``alfine._labels``
(lib/alfine/segmentation/kernels.py uses it) and ``alfine._agglomeration`` (lib/alfine/postprocess/agglomeration.py
and merging.py): built where a C compiler is found, left out (numpy or Python then does their work) where none
is."""

from setuptools import Extension, find_packages, setup

setup(
    packages=["alfine", *(f"alfine.{name}" for name in find_packages("lib/alfine")), "alfine_tools"],
    ext_modules=[Extension("alfine._labels", ["lib/alfine/_labels.c"], optional=True),
                 Extension("alfine._agglomeration", ["lib/alfine/_agglomeration.c"], optional=True)],
)
