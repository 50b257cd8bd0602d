"""The definitions stated in the measurement core's docstrings hold: every doctest of
tfbreak/curvature (each operator and algorithm checked on a small closed-form case) passes, as
`pytest --doctest-modules tfbreak/curvature` would run them."""

import doctest
import importlib
import pkgutil

import tfbreak.curvature


def _modules():
    for info in pkgutil.walk_packages(tfbreak.curvature.__path__, "tfbreak.curvature."):
        yield importlib.import_module(info.name)


def test_every_curvature_doctest_passes():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tested = []
    for module in _modules():
        for test in finder.find(module, module.__name__):
            if test.examples:
                runner.run(test)
                tested.append(test.name)
    results = runner.summarize(verbose=False)
    assert results.failed == 0
    assert len(tested) >= 8, tested  # an operator or algorithm lost its closed-form example
