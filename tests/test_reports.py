"""Reports people read: the terminal table, --plot, --junit, assert_matches_keras and the pytest plugin."""
import json
import os
import xml.etree.ElementTree as ET

import pytest

import numpy_impl
from compare import assert_matches_keras, check
from compare.cli import main
from compare.report import summary

X, Y = numpy_impl.seed_data()


def test_terminal_table_shows_each_quantitys_largest_difference_next_to_its_tolerance():
    text = summary(check(numpy_impl.seed_network(), X, Y, steps=20))
    header = [line for line in text.splitlines() if line.startswith("quantity")][0]
    assert header.split() == ["quantity", "diff/tolerance", "|diff|", "tolerance", "at"]
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.split() and line.split()[0] in ("weights", "forward", "loss", "gradient")}
    assert set(rows) == {"weights", "forward", "loss", "gradient"}
    assert float(rows["gradient"][1]) <= 1 and float(rows["gradient"][2]) <= float(rows["gradient"][3])


def test_mismatch_is_shown_like_a_failing_test():
    text = summary(check(numpy_impl.guide_as_written(), X, Y, steps=5))
    assert "MISMATCH at step 0, gradient dW0[1, 1]: 6 of 6 elements differ" in text
    assert "numpy     7.733288625930857" in text and "keras     -5.15552575062055" in text
    assert "× the tolerance" in text and "diagnosis: gradients are" in text


def test_assert_matches_keras_passes_and_returns_the_report():
    report = assert_matches_keras(numpy_impl.seed_network(), X, Y, steps=50)
    assert report["ok"] and report["steps_checked"] == 50


def test_assert_matches_keras_message_reads_like_assert_close():
    with pytest.raises(AssertionError) as info:
        assert_matches_keras(numpy_impl.guide_as_written(), X, Y, steps=10)
    message = str(info.value)
    assert message.startswith("numpy and Keras are not close at step 0, gradient dW0!")
    assert "Mismatched elements: 6 / 6 (100.0%)" in message
    assert "Greatest absolute difference: 12.888814376551407 at index (1, 1) (up to 9.73e-13 allowed)" in message
    assert "Greatest relative difference: 2.5000000000000" in message
    assert "Diagnosis: gradients are \u22121.5 × Keras's" in message


def test_plot_is_a_png_for_an_agreeing_and_a_failing_run(tmp_path, capsys):
    for impl, name in (("numpy_impl:seed_network", "ok.png"), ("numpy_impl:guide_as_written", "bad.png")):
        main(["--impl", impl, "--steps", "300", "--plot", str(tmp_path / name), "-q"])
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert sorted(os.listdir(tmp_path)) == ["bad.png", "ok.png"]  # no temporary file left behind


def test_junit_has_a_testcase_per_quantity_and_the_failure_report(tmp_path, capsys):
    assert main(["--impl", "numpy_impl:guide_as_written", "--junit", str(tmp_path / "r.xml"), "-q"]) == 1
    root = ET.parse(tmp_path / "r.xml").getroot()
    suite = root.find("testsuite")
    # <testsuites> around one <testsuite>, both with the counts; a testcase per quantity, and one for "every step
    # asked for was compared"; a classname without dots, which CI systems would read as packages
    assert root.tag == "testsuites" and len(root) == 1 and suite.tag == "testsuite"
    for element in (root, suite):
        assert [element.get(k) for k in ("tests", "failures", "errors", "skipped")] == ["5", "1", "0", "1"]
        assert float(element.get("time")) > 0
    cases = suite.findall("testcase")
    assert {c.get("classname") for c in cases} == {"numpy-keras-compare/3-2-1/tensorflow/float64"}
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(cases) == 5 and len(failures) == 1 and failures[0].get("name").startswith("gradient")
    assert "MISMATCH at step 0" in failures[0].find("failure").text
    assert main(["--junit", str(tmp_path / "ok.xml"), "-q"]) == 0
    assert [e.get("failures") for e in ET.parse(tmp_path / "ok.xml").getroot().iter() if "failures" in e.attrib] \
        == ["0", "0"]


def test_history_is_one_summary_per_step(tmp_path):
    report = check(numpy_impl.seed_network(), X, Y, steps=40, history=True)
    h = report["history"]
    assert len(h["loss_numpy"]) == len(h["gradient"]["abs_diff"]) == 40
    assert h["loss_keras"][0] == 238.12000783695962
    assert all(d <= t * (1 + 1e-9) for d, t in zip(h["gradient"]["abs_diff"], h["gradient"]["tolerance"]))
    json.dumps(report, allow_nan=False)


PLUGIN_TEST = '''
import numpy_impl

X, y = numpy_impl.seed_data()


def test_seed(keras_check):
    report = keras_check(numpy_impl.seed_network(), X, y, steps=20)
    assert report["dtype"] == DTYPE


def test_guide_as_written(keras_check):
    keras_check(numpy_impl.guide_as_written(), X, y, steps=20)
'''


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pytest_plugin_fixture_and_dtype_option(pytester, dtype):
    pytester.makepyfile(test_user=PLUGIN_TEST.replace("DTYPE", repr(dtype)))
    result = pytester.runpytest_subprocess("--keras-dtype", dtype)  # the plugin loads by its entry point
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*numpy and Keras are not close at step 0, gradient*",
                                 "*Greatest absolute difference*"])

