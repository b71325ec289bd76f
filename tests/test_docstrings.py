"""The examples in the library's docstrings run and print what they claim (doctest)."""

import doctest
import importlib
import pkgutil

import pytest

import keras_quaternion

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(keras_quaternion.__path__, prefix="keras_quaternion.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # globals: a copy of the module's, as doctest does
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
