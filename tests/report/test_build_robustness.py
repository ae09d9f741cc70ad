"""Builds survive what users do: a killed kernel, SIGINT/SIGTERM, leftovers, two builds at once, a mistyped data folder.

Every build here runs a folder of one-cell toy notebooks with a toy preset, so each takes seconds.
Builds that must be interrupted or run side by side go through the real command line in a
subprocess (``run_cli.py`` points the report at the toy folder, as ``monkeypatch`` does in-process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mtrec_study.report import build as report

RECORD = "from mtrec_study.results import record_results\nrecord_results({'x': SEED}, OUTPUT_DIR)"
RUN_CLI = textwrap.dedent("""\
    import sys
    from pathlib import Path

    from mtrec_study.report import build as report

    report.notebooks = lambda: sorted(Path(sys.argv[1]).glob("[0-9][0-9]_*.ipynb"))
    from mtrec_study.cli import main

    sys.exit(main(sys.argv[2:]))
""")


def _toy_notebook(path: Path, body: str) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# 99 toy"),
                             new_code_cell("SEED = 1\nDATASET = 'synthetic'\nOUTPUT_DIR = '.'"),
                             new_code_cell(body)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A toy notebook folder, preset and reports folder; the report (in-process) builds the toy notebooks.

    Processes that a test starts are listed in ``toy["spawned"]`` and killed when it ends, whatever
    happened (on a failing test, a build and its sleeping kernel would otherwise outlive it).
    """
    nb_dir, root = tmp_path / "nb", tmp_path / "reports"
    nb_dir.mkdir()
    preset = tmp_path / "toy.yaml"
    preset.write_text("SEED: 3\nDATASET: synthetic\n")
    nb = _toy_notebook(nb_dir / "99_toy.ipynb", RECORD)
    monkeypatch.setattr(report, "notebooks", lambda: sorted(nb_dir.glob("[0-9][0-9]_*.ipynb")))
    monkeypatch.delenv("MTREC_DATA_DIR", raising=False)
    script = tmp_path / "run_cli.py"
    script.write_text(RUN_CLI)
    spawned: list[subprocess.Popen | int] = []
    yield {"dir": nb_dir, "nb": nb, "root": root, "preset": preset, "script": script, "tmp": tmp_path,
           "spawned": spawned}
    for proc in spawned:
        if isinstance(proc, int):  # a kernel: its own process group
            if _running(proc):
                try:
                    os.killpg(proc, signal.SIGKILL)
                except OSError:
                    pass
        elif proc.poll() is None:
            proc.kill()
            proc.wait()


def _cli(toy: dict, *args: str) -> subprocess.Popen:
    """``python -m mtrec_study report --preset toy.yaml ...`` on the toy notebooks, from the toy folder."""
    env = {**os.environ, "MTREC_REPORTS_DIR": str(toy["root"]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MTREC_DATA_DIR", None)
    proc = subprocess.Popen([sys.executable, str(toy["script"]), str(toy["dir"]), "report", "--preset",
                             str(toy["preset"]), *args], cwd=toy["tmp"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    toy["spawned"].append(proc)
    return proc


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob(".*"))


def _wait_for(condition, timeout: float = 90.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _running(pid: int) -> bool:
    """Whether a process runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_kernel_ends_the_build_with_one_line_and_keeps_the_report(toy):
    root = toy["root"]
    index = report.build_report(str(toy["preset"]), out_root=root, progress=False)
    before = _snapshot(root / "toy")
    _toy_notebook(toy["nb"], "import os, signal\nprint('about to die', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(report.ReportError) as err:
        report.build_report(str(toy["preset"]), out_root=root, progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("99_toy's kernel died (killed, or out of memory) after ")
    assert f"the last good report at {root / 'toy'} is unchanged" in msg
    assert f"the partial notebook is at {root / 'toy-failed.ipynb'}" in msg
    log = root / "logs" / "toy-build.log"
    assert f"the full traceback is in {log}" in msg
    assert "DeadKernelError" in log.read_text() and msg in log.read_text()
    assert "about to die" in (root / "toy-failed.ipynb").read_text()
    assert _snapshot(root / "toy") == before and index.exists()
    assert _leftovers(root) == []


def test_cli_prints_one_line_and_exits_non_zero_when_a_kernel_dies(toy):
    _toy_notebook(toy["nb"], "import os\nos.kill(os.getpid(), 9)")
    proc = _cli(toy)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "Kernel died while" not in err, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: 99_toy's kernel died (killed, or out of memory)"), err
    assert "no report was written to reports/toy" in errors[0]
    assert "the full traceback is in reports/logs/toy-build.log" in errors[0]
    assert (toy["root"] / "logs" / "toy-build.log").exists()
    assert not (toy["root"] / "toy").exists() and _leftovers(toy["root"]) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_build_stops_the_kernel_and_leaves_no_temporary_folder(toy, signum):
    root = toy["root"]
    report.build_report(str(toy["preset"]), out_root=root, progress=False)
    before = _snapshot(root / "toy")
    mark = toy["tmp"] / "kernel.pid"
    _toy_notebook(toy["nb"], f"import os, pathlib, time\npathlib.Path({str(mark)!r}).write_text(str(os.getpid()))\n"
                             "time.sleep(300)")
    proc = _cli(toy)
    _wait_for(lambda: mark.exists() and mark.read_text(), what="the toy kernel to start")
    kernel = int(mark.read_text())
    toy["spawned"].append(kernel)
    assert list(root.glob(f".tmp-toy-{proc.pid}")) and (root / ".lock-toy").read_text().strip() == str(proc.pid)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [line for line in err.splitlines() if "error" in line.lower()] and len(lines) == 1, err
    assert lines[0].startswith(f"error: interrupted by {signal.Signals(signum).name} after ")
    assert "stopped 1 running kernel(s)" in lines[0] and f"removed reports/.tmp-toy-{proc.pid}" in lines[0]
    assert "the last good report at reports/toy is unchanged" in lines[0]
    assert "Traceback" not in err
    assert _leftovers(root) == []  # no .tmp-*, no .lock-*
    _wait_for(lambda: not _running(kernel), timeout=10, what=f"the kernel {kernel} to end")
    assert _snapshot(root / "toy") == before


def test_a_new_build_removes_what_builds_that_are_gone_left_behind(toy, capsys):
    root = toy["root"]
    root.mkdir()
    gone = _gone_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    toy["spawned"].append(live)
    (root / "other").mkdir()  # another preset's report, whose build was killed after its final renames
    for leftover in (f".tmp-toy-{gone}", f".tmp-other-{gone}", f".old-other-{gone}", f".tmp-other-{live.pid}"):
        (root / leftover).mkdir()
        (root / leftover / "half.html").write_text("half a report")
    (root / ".lock-toy").write_text(f"{gone}\n")  # a lock left by a build killed with -9
    report.build_report(str(toy["preset"]), out_root=root, progress=False)
    err = capsys.readouterr().err
    assert _leftovers(root) == [f".tmp-other-{live.pid}"]  # another preset's build that is still running
    assert f"note: took over the stale lock {root / '.lock-toy'} of pid {gone}" in err
    assert "note: removed 3 temporary folder(s) of builds that are gone" in err
    assert json.loads((root / "toy" / "99_toy" / "results.json").read_text())["summary"]["x"] == 3


def test_a_report_left_halfway_through_its_final_renames_is_restored(tmp_path, capsys):
    # A build killed between "report -> .old" and ".tmp -> report" leaves the last good report as .old-*.
    gone = _gone_pid()
    (tmp_path / f".old-toy-{gone}").mkdir()
    (tmp_path / f".old-toy-{gone}" / "index.html").write_text("the last good report")
    (tmp_path / f".tmp-toy-{gone}").mkdir()
    report._remove_stale(tmp_path, "toy")
    assert (tmp_path / "toy" / "index.html").read_text() == "the last good report"
    assert _leftovers(tmp_path) == []
    assert "restored the last good report" in capsys.readouterr().err


def test_second_build_of_a_preset_waits_or_refuses_and_the_report_stays_intact(toy, capsys):
    root = toy["root"]
    mark = toy["tmp"] / "started"
    _toy_notebook(toy["nb"], f"import pathlib, time\npathlib.Path({str(mark)!r}).write_text('1')\ntime.sleep(4)\n{RECORD}")
    first = _cli(toy)
    _wait_for(lambda: mark.exists(), what="the first build's kernel to start")
    with pytest.raises(report.ReportError) as err:
        report.build_report(str(toy["preset"]), out_root=root, progress=False, wait=False)
    msg = str(err.value)
    assert f"another build of the 'toy' report is running (pid {first.pid}" in msg and "--no-wait" in msg
    assert first.poll() is None  # the refusal left the running build alone
    index = report.build_report(str(toy["preset"]), out_root=root, progress=False)  # waits, then reuses its work
    assert f"waiting for the build of the 'toy' report by pid {first.pid} to finish" in capsys.readouterr().err
    out, err_text = first.communicate(timeout=60)
    assert first.returncode == 0, err_text
    manifest = json.loads((root / "toy" / "manifest.json").read_text())
    assert [(r["name"], r["reused"]) for r in manifest["notebooks"]] == [("99_toy", True)]
    assert json.loads((root / "toy" / "99_toy" / "results.json").read_text())["summary"]["x"] == 3
    assert index.exists() and _leftovers(root) == []


def test_cli_no_wait_refuses_while_another_build_holds_the_lock(toy):
    root = toy["root"]
    root.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import fcntl, os, sys, time
        fd = os.open({str(root / '.lock-toy')!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, str(os.getpid()).encode())
        print("locked", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    toy["spawned"].append(holder)
    assert holder.stdout.readline().strip() == "locked"
    proc = _cli(toy, "--no-wait")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1].startswith(
        f"error: another build of the 'toy' report is running (pid {holder.pid}, lock reports/.lock-toy)")
    assert not (root / "toy").exists()


def test_missing_data_folder_stops_the_build_naming_it(toy, monkeypatch, cache):
    toy["preset"].write_text("DATASET: ml-100k\n")
    monkeypatch.setenv("MTREC_DATA_DIR", str(toy["tmp"] / "no-such-folder"))
    with pytest.raises(report.ReportError, match=r"(?s)no notebook was run.*MTREC_DATA_DIR names .*no-such-folder, "
                                                 r"which does not exist.*ml-100k \(u\.data"):
        report.build_report(str(toy["preset"]), out_root=toy["root"], progress=False)
    assert not (toy["root"] / "toy").exists()
