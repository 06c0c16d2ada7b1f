"""A warm ``hybridssl`` for the tests that run whole shell scripts (the ``e2e`` ones).

Each ``hybridssl`` command a script starts is a fresh process that spends 3-8 s importing torch,
timm and Lightning before it does a moment's work; a tiny end-to-end script starts about twenty.
Here one server process imports them once and forks a child per command: the child is still its
own process (own exit code, own file descriptors: the caller's stdin/stdout/stderr are passed over
the socket, its working directory and environment are the caller's), it only skips the start-up.

``python tests/warm_cli.py serve SOCKET`` runs the server; ``python tests/warm_cli.py client MODULE
ARGS...`` is ``python -m MODULE ARGS...`` through it (stdlib only, so it starts in milliseconds).
The folder ``tests/warm/`` holds the ``hybridssl`` and ``python`` stand-ins the scripts are given.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

PRELOAD = ("torch", "timm", "pytorch_lightning", "hybridssl.cli", "hybridssl.train.run", "hybridssl.apply.inference",
           "hybridssl.apply.predict", "benchmarks.transfer", "data_prep.prepare")
MODULES = ("hybridssl.cli", "benchmarks.gpu_check")  # the `python -m` modules run warm (tests/warm/python)
_HEADER = struct.Struct("!Q")


def _child(request: dict, fds: list[int]) -> int:
    for target, fd in enumerate(fds):  # the caller's stdin, stdout, stderr
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit():  # the OpenMP runtime read the server's value when it loaded
        import torch
        torch.set_num_threads(int(threads))
    import runpy
    sys.argv = [request["module"], *request["argv"]]
    try:
        if request["module"] == "hybridssl.cli":  # preloaded: runpy would warn that it runs it a second time
            from hybridssl.cli import main
            return int(main(request["argv"]) or 0)
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else int(e.code is not None)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    (size,) = _HEADER.unpack(data[:_HEADER.size])
    body = data[_HEADER.size:]
    while len(body) < size:
        body += conn.recv(size - len(body))
    return json.loads(body), list(fds)


def serve(path: str) -> None:
    import importlib
    for module in PRELOAD:
        importlib.import_module(module)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    server.settimeout(0.05)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}  # child pid -> its caller's connection
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            conn = None
        if conn is not None:
            conn.settimeout(None)
            request, fds = _receive(conn)
            pid = os.fork()
            if pid == 0:
                server.close()
                rc = 1
                try:
                    rc = _child(request, fds)
                except BaseException:
                    import traceback
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(rc)
            for fd in fds:
                os.close(fd)
            conn.sendall(f"{pid}\n".encode())
            waiting[pid] = conn
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                rc = os.waitstatus_to_exitcode(status)
                conn.sendall(f"{rc if rc >= 0 else 128 - rc}\n".encode())
                conn.close()


def client(module: str, argv: list[str]) -> int:
    if module not in MODULES:  # any other `python -m` is plain python
        os.execv(sys.executable, [sys.executable, "-m", module, *argv])
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(os.environ["WARM_CLI_SOCKET"])
    body = json.dumps({"module": module, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [_HEADER.pack(len(body)) + body], [0, 1, 2])
    replies = conn.makefile()
    pid = int(replies.readline())
    for sig in (signal.SIGTERM, signal.SIGINT):  # `timeout`, Ctrl-C: passed on to the command
        signal.signal(sig, lambda n, _: os.kill(pid, n))
    return int(replies.readline())


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[2], sys.argv[3:]))
