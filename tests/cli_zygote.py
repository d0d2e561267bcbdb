"""A fork server for the tests' CLI runs: import torch, Hydra and every `nasrun-*` command once, then
run each command in a fresh forked process.

Starting a console script costs about 4 s of imports (torch alone 3 s) before it does anything; the
tests run over a hundred of them. This process pays the imports once and never runs a tensor op (so no
thread pool exists when it forks). Each request becomes a child process that is what a console-script
process would be at the line `sys.exit(main())`: its own pid, working directory, environment, argv,
stdout/stderr files, and exit status (a signal shows as a negative return code, as with `subprocess`).

Protocol (one JSON object per line): request {"command", "args", "cwd", "env", "stdout", "stderr",
"timeout", "limits", "missing"} on stdin (limits: tests/child_limits.py; missing: packages the child cannot
import); reply {"returncode", "timed_out"} on stdout.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import signal
import sys
import time
import traceback
from importlib.metadata import entry_points

import child_limits  # from this tests/ folder, before sys.path[0] changes

# A console script's sys.path starts with its own bin/ folder, not this tests/ folder.
sys.path[0] = os.path.dirname(sys.executable)
PROTOCOL_IN, PROTOCOL_OUT = sys.stdin, os.fdopen(os.dup(1), "w")


def command_mains() -> dict:
    """console-script name -> its `main`, imported now so every child starts with them loaded."""
    mains = {}
    for point in entry_points(group="console_scripts"):
        if point.name == "nasrun" or point.name.startswith("nasrun-"):
            module, _, attribute = point.value.partition(":")
            mains[point.name] = getattr(importlib.import_module(module), attribute)
    return mains


# What the commands import on first use (the first optimizer imports torch._dynamo, 2 s; data loaders,
# TensorBoard, TPE, plots; the Optuna study's journal storage; report.html's Jinja2;
# Hydra's launcher plugins; nasrun-export's torch.export, ONNX and safetensors, ~2 s more): loaded here
# once instead of in every child. Ray is not: it starts threads.
PRELOADED = ("torch._dynamo", "tensorboard.summary.writer.event_file_writer", "tensorboard.compat.proto.summary_pb2",
             "torchvision.datasets", "torchvision.transforms", "optuna", "optuna.storages.journal", "jinja2",
             "zoneinfo",
             "hydra._internal.core_plugins.basic_launcher", "hydra._internal.core_plugins.basic_sweeper",
             "hydra_plugins.hydra_joblib_launcher.joblib_launcher",
             "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
             "matplotlib.figure", "matplotlib.ticker", "matplotlib.patches", "matplotlib.backends.backend_agg",
             "torch.export", "torch.onnx", "onnx", "safetensors.torch")


def nasrun_modules() -> list[str]:
    """Every module of the nasrun package (strategies, estimators, spaces... which the commands import on
    first use, ~0.2-0.7 s per child), but `nasrun.__main__`, which would run a search."""
    import pkgutil

    import nasrun

    return [module.name for module in pkgutil.walk_packages(nasrun.__path__, "nasrun.")
            if not module.name.startswith("nasrun.conf") and module.name != "nasrun.__main__"]


def preload() -> None:
    for name in [*PRELOADED, *nasrun_modules()]:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional package this venv lacks: the child imports what it needs
            pass


def thread_count() -> int:
    """Threads of this process (a fork copies only the calling one: there must be no other)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def run_child(main, request: dict) -> None:
    """In the forked child: become the console-script process, run `main`, exit with its status."""
    os.setpgid(0, 0)
    PROTOCOL_OUT.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    child_limits.apply(request.get("limits") or {})
    hide(request.get("missing") or [])
    sys.argv = [os.path.join(os.path.dirname(sys.executable), request["command"]), *request["args"]]
    sys.modules["__main__"].__file__ = sys.argv[0]  # what a spawned worker re-runs as __mp_main__: the script
    code = 0
    try:
        main()
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code & 0xFF)


def hide(packages: list[str]) -> None:
    """Make `packages` unimportable, as where they are not installed: their loaded modules are dropped and a
    None entry makes `import` raise ImportError (what a sitecustomize does for a fresh interpreter)."""
    for name in packages:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        sys.modules[name] = None


def wait(pid: int, timeout: float) -> tuple[int, bool]:
    """(return code as subprocess reports it, whether it was killed for running past `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)), False
        if time.monotonic() > deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return -signal.SIGKILL, True
        time.sleep(0.01)


def fork_works() -> bool:
    """Whether a forked child of this process can run torch ops (threads and oneDNN included) and exit
    cleanly within 60 s; if not, the tests start every console script afresh instead."""
    pid = os.fork()
    if pid == 0:
        import torch

        try:
            torch.set_num_threads(2)
            x = torch.randn(8, 4, 16, 16, requires_grad=True)
            torch.nn.functional.conv2d(x, torch.randn(4, 4, 3, 3), padding=1).sum().backward()
            code = 0 if torch.isfinite((torch.ones(64, 64) @ torch.ones(64, 64)).sum()) else 1
        except BaseException:
            code = 1
        os._exit(code)
    returncode, timed_out = wait(pid, 60)
    return returncode == 0 and not timed_out


def serve() -> None:
    mains = command_mains()
    preload()
    works = fork_works() and thread_count() == 1
    PROTOCOL_OUT.write(json.dumps({"ready": sorted(mains), "fork_works": works}) + "\n")
    PROTOCOL_OUT.flush()
    for line in PROTOCOL_IN:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(mains[request["command"]], request)
        returncode, timed_out = wait(pid, request["timeout"])
        PROTOCOL_OUT.write(json.dumps({"returncode": returncode, "timed_out": timed_out}) + "\n")
        PROTOCOL_OUT.flush()


if __name__ == "__main__":
    serve()
