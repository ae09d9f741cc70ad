"""The test-suite benchmark reads pytest's JUnit log: one row per test, its folder, seconds and outcome."""

from __future__ import annotations

import pandas as pd

from benchmarks.bench_tests import case_times

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="9.0">
<testcase classname="tests.unit.test_a" name="test_ok" time="1.5" />
<testcase classname="tests.unit.test_a" name="test_bad[x]" time="2.0"><failure message="boom">E</failure></testcase>
<testcase classname="tests.notebooks.test_notebooks" name="test_04" time="5.25"><skipped message="no" /></testcase>
<testcase classname="tests.report.test_report" name="test_build" time="0.25"><error message="setup">E</error></testcase>
</testsuite></testsuites>
"""


def test_case_times_reads_each_case(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    times = case_times(path)
    assert times["test"].tolist() == ["tests/unit/test_a::test_ok", "tests/unit/test_a::test_bad[x]",
                                      "tests/notebooks/test_notebooks::test_04", "tests/report/test_report::test_build"]
    assert times["folder"].tolist() == ["tests/unit", "tests/unit", "tests/notebooks", "tests/report"]
    assert times["seconds"].tolist() == [1.5, 2.0, 5.25, 0.25]
    assert times["outcome"].tolist() == ["passed", "failure", "skipped", "error"]
    assert times.groupby("folder")["seconds"].sum().to_dict() == {"tests/notebooks": 5.25, "tests/report": 0.25,
                                                                   "tests/unit": 3.5}


def test_benchmark_tables_write_large_seconds_as_whole_numbers():
    from benchmarks.common import markdown_table

    text = markdown_table(pd.DataFrame({"part": ["suite", "test"], "seconds": [1673.9, 12.54]}))
    assert "| suite | 1674 |" in text and "| test | 12.5 |" in text
    assert "e+" not in text
    # A difference stored as round(-0.00004, 4) is -0.0; the table says 0.
    zero = markdown_table(pd.DataFrame({"difference": ["a − b"], "ci_high": [round(-0.00004, 4)]}))
    assert "| a − b | 0 |" in zero and "-0" not in zero
