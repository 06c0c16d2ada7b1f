"""``hybridssl <command>``: one entry point; each command lives in the module that does the work.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen
command's module is imported, so ``hybridssl schema`` does not pay for importing torch.
:func:`progress` is how every command reports long work: a bar on a terminal, a line per stage in a log.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys
import time
from typing import Callable, Iterable, Optional

# name -> (module, one-line help), in data-flow order
COMMANDS = {
    "schema": ("hybridssl.schema", "summarise a label schema (campaigns, questions, answers)"),
    "demo-data": ("data_prep.synthetic.cli", "generate the synthetic GZ-Evo-like demo dataset"),
    "prepare": ("data_prep.prepare", "write a catalog's images and votes into WebDataset shards"),
    "verify": ("data_prep.verify", "check shards against their manifest; name every bad shard"),
    "augment-preview": ("hybridssl.augment.preview", "save a grid of originals and their two augmented views"),
    "pretrain": ("hybridssl.train.cli", "pretrain a backbone (hybrid | byol | supervised | scratch)"),
    "export": ("hybridssl.export.timm_folder", "export a checkpoint's backbone in timm format (+ Dirichlet head)"),
    "benchmark": ("benchmarks.transfer", "low-label transfer benchmark of exported backbones"),
    "finetune": ("hybridssl.finetune.cli", "train an export plus a new head on your labels (class, value, votes)"),
    "predict": ("hybridssl.apply.predict", "expected vote fractions, intervals and ask probabilities per answer"),
    "calibrate": ("hybridssl.apply.calibrate", "coverage of predicted vote-count intervals on galaxies with votes"),
    "embed": ("hybridssl.apply.embed", "L2-normalised backbone features of a shard set or catalog"),
    "similar": ("hybridssl.apply.similar", "nearest galaxies to a query galaxy in embedding space (+ montage)"),
    "anomalies": ("hybridssl.apply.anomalies", "rank galaxies by a small model of your few interesting examples"),
    "acquire": ("hybridssl.apply.acquire", "rank unlabelled galaxies by BALD for the next volunteer batch"),
}


def int_at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum``; the error names the bound and the value."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = "int"  # argparse says "invalid int value" for text that is not a number
    return parse


class CommandUnavailable(Exception):
    """A registered command whose module is not part of this build (yet)."""


def _import_command(name: str):
    module = COMMANDS[name][0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        # only the command's own module (or its package) missing; a missing dependency inside
        # it is a real error and keeps its traceback
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise
        raise CommandUnavailable(f"command {name!r} is not available in this build "
                                 f"(module {module} not found)") from None


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hybridssl", description="Hybrid BYOL + Dirichlet galaxy pretraining.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, description=help_)
    return top


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    """``hybridssl COMMAND ...``, importing only that command; ``key=value`` overrides may sit
    before, between or after the flags (argparse takes a positional list once unless intermixed)."""
    parser = argparse.ArgumentParser(prog=f"hybridssl {command}", description=COMMANDS[command][1])
    _import_command(command).add_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    args.command = command
    return args


# read-only filesystem, no permission, a folder where a file goes (or the reverse), disk full
_USER_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EDQUOT}
USER_ERROR = 2  # argparse's status for a bad command line; every error a user can fix exits with it


def _is_user_error(e: BaseException) -> bool:
    """Errors users cause are ValueError subclasses (ConfigError, ShardError, ...), file/disk
    problems or a directory another run holds; a bare ValueError is more likely a bug and keeps
    its traceback."""
    from hybridssl.storage.atomic import DiskWriteError
    from hybridssl.storage.locks import LockError
    return (isinstance(e, ValueError) and type(e) is not ValueError) or isinstance(
        e, (FileNotFoundError, DiskWriteError, LockError)) or (
        isinstance(e, OSError) and e.errno in _USER_ERRNOS)


def user_error(prog: str, message) -> int:
    """Print the one error line and return :data:`USER_ERROR`, for a command's own checks."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USER_ERROR


def run_command(prog: str, fn: Callable[..., int | None], *args) -> int:
    """``fn(*args)`` as an exit status: a user error is one line and :data:`USER_ERROR`, Ctrl-C
    130, anything else keeps its traceback. ``hybridssl`` and the ``python -m benchmarks.*`` scripts."""
    try:
        return int(fn(*args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if not _is_user_error(e):
            raise
        return user_error(prog, e)


class LogProgress:
    """A progress report for a log file: a line at every ``step`` percent once the stage has run for
    ``quiet_s`` seconds since the last line, and one line when it ends; never a carriage return."""

    def __init__(self, iterable: Optional[Iterable], total: Optional[int], desc: str, unit: str,
                 step: int = 25, quiet_s: float = 30.0, silent: bool = False):
        self.iterable, self.desc, self.unit, self.step, self.quiet_s = iterable, desc, unit, step, quiet_s
        self.silent = silent
        self.total = total if total is not None or iterable is None else getattr(iterable, "__len__", lambda: None)()
        self.n, self._next, self._closed = 0, step, False
        self._start = self._last = time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:  # the command's error is the line to read, not a "done"
            self._closed = True
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.total or self.n * 100 < self._next * self.total:
            return
        while self._next <= 100 * self.n / self.total:
            self._next += self.step
        if time.perf_counter() - self._last >= self.quiet_s and self.n < self.total:
            self._line(f"{100 * self.n // self.total}%")

    def set_postfix_str(self, text: str) -> None:
        """What a terminal bar shows after the count; a log keeps only the percent lines."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line("done")

    def _line(self, what: str) -> None:
        self._last = time.perf_counter()
        if self.silent:
            return
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        print(f"{self.desc}: {what}, {count} {self.unit} in {self._last - self._start:.0f} s", file=sys.stderr,
              flush=True)


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "", unit: str = "it",
             leave: bool = True, enabled: bool = True):
    """The one progress bar of every command: tqdm's when stderr is a terminal, else :class:`LogProgress`
    (a log file gets a few lines per stage, not thousands of bar refreshes). ``enabled=False``: silent."""
    if not enabled:
        return LogProgress(iterable, total, desc, unit, silent=True)
    if sys.stderr.isatty():
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LogProgress(iterable, total, desc, unit)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    if command is None:
        top = _parser()
        top.parse_args(argv)  # -h, or an unknown command: argparse's message and exit
        top.print_help()
        return USER_ERROR
    try:
        args = _parse(command, argv[1:])
    except CommandUnavailable as e:
        return user_error("hybridssl", e)
    return run_command(f"hybridssl {args.command}", _checked_run, args)


def _checked_run(args) -> int:
    """The command, once its outputs are known not to destroy its inputs (before any write)."""
    from hybridssl.storage.outputs import check_command
    check_command(args.command, args)
    return _import_command(args.command).run(args)


if __name__ == "__main__":
    sys.exit(main())
