"""The study's Jupyter kernel ``mtrec``: ipykernel, with TensorFlow's C++ start-up lines kept out of notebooks.

TensorFlow writes lines such as ``Could not find cuda drivers on your machine`` straight to file
descriptor 2 from C++, before its own log level applies. ipykernel normally copies everything
written to that descriptor into the notebook as a red stderr block. This kernel turns that copy
off (``capture_fd_output=False``): Python's own ``sys.stderr`` (warnings, tracebacks) still shows
in the notebook, while C-level output goes to the kernel's terminal, or to the file named by
``MTREC_KERNEL_LOG`` (the report sets it, so a crashed kernel's last words are kept).

``python -m mtrec_study.kernel install --prefix .venv`` registers it (``make venv`` does), with
this interpreter's absolute path, so JupyterLab and papermill start the venv's Python.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

NAME = "mtrec"
DISPLAY_NAME = "mtrec-study (.venv)"


def spec() -> dict:
    """The kernelspec: this interpreter, this module, quiet TensorFlow.

    Used by mtrec_study.kernel.
    """
    return {"argv": [sys.executable, "-m", "mtrec_study.kernel", "-f", "{connection_file}"],
            "display_name": DISPLAY_NAME, "language": "python",
            "env": {"TF_CPP_MIN_LOG_LEVEL": "3"}, "metadata": {"debugger": True}}


def install(prefix: str | Path) -> Path:
    """Write the ``mtrec`` kernelspec under ``<prefix>/share/jupyter/kernels/mtrec``.

    Used by mtrec_study.kernel.
    """
    folder = Path(prefix) / "share" / "jupyter" / "kernels" / NAME
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kernel.json").write_text(json.dumps(spec(), indent=1) + "\n", encoding="utf-8")
    return folder


def launch(argv: list[str]) -> None:
    """Start ipykernel with fd-level output left out of the notebook.

    Used by mtrec_study.kernel.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    log = os.environ.get("MTREC_KERNEL_LOG")
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=[*argv, "--IPKernelApp.capture_fd_output=False"])


def main(argv: list[str] | None = None) -> int:
    """``python -m mtrec_study.kernel install --prefix DIR`` registers the kernel; anything else launches it.

    Used by mtrec_study.kernel.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["install"]:
        if len(args) != 3 or args[1] != "--prefix":
            print("usage: python -m mtrec_study.kernel install --prefix DIR", file=sys.stderr)
            return 2
        print(f"installed kernelspec {NAME} in {install(args[2])}")
        return 0
    launch(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
