"""Gradient Flow Lab's command line: ``python main.py …``, installed as ``gradlab``.

Without a subcommand it opens the desktop app; ``analyze``, ``train``, ``presets``
and ``info`` run headless and never import Qt.  Exit status: 0 success, 2 bad
input (one ``error: …`` line on stderr), 1 internal error (set GRADLAB_DEBUG=1
for the traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "gradlab"
DEBUG_ENV = "GRADLAB_DEBUG"
SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
EXPORT_FORMATS = ("png", "svg", "csv")


class UsageError(Exception):
    """A command-line mistake (argparse's own errors included): exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage block
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# ----------------------------------------------------------------------------- helpers


def _one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (a long value never floods)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _lab(args: argparse.Namespace, training: bool = False) -> Any:
    """The :class:`core.lab.Lab` a command works on: the document (.json, or .gradlab
    with its weights, history and optimizer state), ``--weights`` on it, and the
    ``--input``/``--target`` arrays; the memory check comes before any large array."""
    from core.backend import resolve_backend
    from core.errors import UserError
    from core.experiment import training_batch_size
    from core.lab import Lab

    doc = _source(args)
    exp = doc.experiment
    data = _user_data(args, exp, saved=doc.data is not None)
    arrays = data or doc.data  # given on the command line, else saved in the document
    T, N = (arrays[0].shape[0], arrays[0].shape[1]) if arrays else (exp.task.seq_len,
                                                                    exp.task.batch_size)
    if training:  # the training batches run forward and backward; the validation batch
        # (every given sequence, or max(4B, 64) of the task) forward only
        B = training_batch_size(exp, N if arrays else None)
        steps = exp.training.steps if args.steps is None else args.steps
        probes = exp.training.trace_every > 0  # with every analysis, as the window shows
        _check_memory(_source_name(args), exp, T, N, training_steps=max(steps, 1),
                      train_batch=B, val_batch=N if arrays else max(4 * B, 64),
                      jacobian=probes, connectivity=probes)
    else:
        _check_memory(_source_name(args), exp, T, N,
                      jacobian=getattr(args, "jacobian", False),
                      connectivity=getattr(args, "connectivity", False))
    resolve_backend(exp.backend.device, exp.backend.dtype)  # fail early: no GPU for 'cupy'
    lab = Lab(exp)
    lab.load_document(doc, path=args.experiment, lesson=args.source_preset)
    if args.weights:
        from core.weights import load_weights

        _done(lab, lab.set_weights(load_weights(args.weights, exp.model),
                                   f"Load weights {Path(args.weights).name}"))
    if data is not None:
        _done(lab, lab.set_data(*data))
    if lab.last_error:
        raise UserError(lab.last_error)
    return lab


def _document(path: str | None, preset: str | None) -> Any:
    """The document a command works on: the file at ``path`` (.json or .gradlab), or
    lesson ``preset`` as a document of its own."""
    if preset:
        from core.document import Document
        from core.lessons import load_lesson

        return Document(load_lesson(preset))
    from core.document import read_document

    return read_document(path)


def _source(args: argparse.Namespace) -> Any:
    """The document a command works on, from its EXPERIMENT file or its ``--preset``
    (exactly one of them; see :func:`_source_args`)."""
    if bool(args.experiment) == bool(args.source_preset):
        raise UsageError(f"{PROG} {args.command}: give an EXPERIMENT file or --preset NAME, "
                         f"not both and not neither (see {PROG} {args.command} --help)")
    return _document(args.experiment, args.source_preset)


def _source_name(args: argparse.Namespace) -> str:
    """How messages name what a command works on: the file, or ``preset NAME``."""
    return args.experiment or f"preset {args.source_preset}"


def _data(args: argparse.Namespace, doc: Any) -> tuple[Any, Any] | None:
    """``--input``/``--target``, else the document's own arrays, else None (the task)."""
    return _user_data(args, doc.experiment, saved=doc.data is not None) or doc.data


def _gui(module: str, what: str) -> Any:
    """Import a Qt part of the lab; without PySide6 or pyqtgraph, a UsageError saying
    that ``what`` needs them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"):
            raise UsageError(f"{what} needs PySide6 and pyqtgraph ({exc}); "
                             "install them with `pip install -e .`") from None
        raise


def _done(lab: Any, ok: bool) -> None:
    """A refused Lab edit becomes the command's error."""
    if not ok:
        from core.errors import UserError

        raise UserError(lab.last_error)


def _out_dir(path: str) -> Path:
    from core.fileio import ensure_folder

    return ensure_folder(path, "--out")


# Signals that stop a command as Ctrl-C does (train: after the current step).
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                      if hasattr(signal, name))


def _staged(path: str, command: str) -> Any:
    """The all-or-nothing output folder of ``--out`` (core.outputs.OutputFolder)."""
    from core.outputs import ANALYZE_OUTPUTS, RUN_OUTPUTS, OutputFolder

    return OutputFolder(path, "--out", ANALYZE_OUTPUTS if command == "analyze" else RUN_OUTPUTS)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _check_memory(exp_path: str, exp: Any, T: int, B: int, **options: Any) -> None:
    """Everything the command will allocate (core.estimate), before any of it."""
    from core.estimate import check, estimate

    check(estimate(exp, T, B, writes=True, **options), exp_path)


def _user_data(args: argparse.Namespace, exp: Any,
               saved: bool = False) -> tuple[Any, Any] | None:
    """``(x, y)`` from ``--input``/``--target``, validated, or None for the task's data
    (or the arrays ``saved`` in a .gradlab).  An experiment without a task section needs
    both, unless its document holds its arrays."""
    from core.errors import DataError
    from core.userdata import load_input, load_target

    name = _source_name(args)
    if exp.task is None and not (args.input or args.target) and not saved:
        raise DataError(f"{name} has no task section: give --input X.npy and --target Y.npy")
    if args.target and not args.input:
        rest = ("give both, or neither to use the experiment's task" if exp.task is not None
                else f"give both ({name} has no task section)")
        raise DataError(f"--target given without --input; {rest}")
    if args.input and not args.target:
        raise DataError("--input given without --target; the loss, and so every gradient, "
                        "needs a target")
    if not args.input:
        return None
    x = load_input(args.input, exp.model)
    y = load_target(args.target, exp.model, T=x.shape[0], B=x.shape[1])
    return x, y


def _warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr)


# ----------------------------------------------------------------------------- commands


def cmd_app(args: argparse.Namespace) -> int:
    """Open the desktop app (optionally on a preset, optionally saving a screenshot)."""
    if args.preset:
        from core.lessons import lesson_path

        lesson_path(args.preset)  # unknown names fail here, listing the presets
    if args.screenshot:
        if Path(args.screenshot).suffix.lower() not in SCREENSHOT_SUFFIXES:
            raise UsageError(f"--screenshot {args.screenshot}: use one of "
                             f"{', '.join(SCREENSHOT_SUFFIXES)}")
        headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        if headless and sys.platform not in ("darwin", "win32"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    run_app = _gui("gui.app", "the desktop app").run_app
    return int(run_app(preset=args.preset, screenshot=args.screenshot,
                       size=args.window_size) or 0)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Forward + BPTT on one batch; write trace.npz and summary.json."""
    from core.tracefile import write_results

    lab = _lab(args)
    with _staged(args.out, "analyze") as out:  # every file, or none: see core.outputs
        # The whole of the given arrays, or the task's probe batch: what the window shows.
        from core.jobs import Control

        progress = _CompareProgress("analyze")  # a line for work past a second; Ctrl-C stops
        res = lab.probe(control=Control(progress.update), jacobian=args.jacobian,
                        connectivity=args.connectivity)
        progress.close()
        written = write_results(out.path, lab.experiment, res)
        out.commit()
    for path in written:
        print(f"wrote {out.final(path)}")
    if res.nonfinite:
        _warn(res.nonfinite)
    return 0


class _Progress:
    """A progress line on stderr: rewritten in place on a terminal, else every few seconds."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.width = 0

    def update(self, done: int, snap: Any, final: bool = False) -> None:
        """``done`` steps of this run so far; ``snap`` the latest snapshot."""
        now = time.monotonic()
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        rate = snap.steps_per_s
        left = max(self.total - done, 0) / rate if rate > 0 else float("nan")
        text = (f"step {done}/{self.total}  loss {snap.loss:.4g}  "
                f"{rate:.1f} steps/s  {_duration(left)} left")
        if self.tty:
            pad = max(self.width - len(text), 0)
            self.width = len(text)
            sys.stderr.write("\r" + text + " " * pad + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _duration(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    s = round(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def cmd_train(args: argparse.Namespace) -> int:
    """Train; write experiment.json, weights.safetensors, history.csv, trace.npz, summary.json."""
    lab = _lab(args, training=True)
    with _staged(args.out, "train") as out:  # every file, or none: see core.outputs
        return _train_into(args, lab, out)


def _train_into(args: argparse.Namespace, lab: Any, staged: Any) -> int:
    """Train ``lab`` and write its files into ``staged`` (a core.outputs.OutputFolder),
    then put them in place.  SIGINT, SIGTERM and SIGHUP stop after the current step."""
    from core.experiment import save_experiment
    from core.tracefile import write_results, writing
    from core.weights import save_weights

    out = staged.path
    total = lab.experiment.training.steps if args.steps is None else args.steps

    stop = {"asked": False}

    def on_sigint(signum: int, frame: Any) -> None:
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        sys.stderr.write("\nstopping after this step (Ctrl-C again to abort without saving)\n")

    progress = _Progress(total)
    seen = {"steps": 0, "last": None}  # the last snapshot only: each holds its probe

    def each(snap: Any) -> None:
        seen["steps"] += 1
        seen["last"] = snap
        progress.update(seen["steps"], snap, final=snap.done)
        if snap.nonfinite:
            _warn(snap.nonfinite)

    previous = {sig: signal.signal(sig, on_sigint) for sig in _STOP_SIGNALS}
    try:
        if total > 0:
            lab.train(total, cancel=lambda: stop["asked"], on_snapshot=each)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    last = seen["last"]
    if last is not None and not last.done:
        progress.update(seen["steps"], last, final=True)

    exp, final = lab.experiment, dict(lab.params)
    written = []
    p = out / "experiment.json"
    written.append(writing(p, lambda: save_experiment(exp, p)))
    w = out / "weights.safetensors"
    written.append(writing(w, lambda: save_weights(w, final)))
    h = out / "history.csv"
    written.append(writing(h, lambda: lab.history.write_csv(h)))
    # The final model on the probe batch: the last step's own probe when it has one.
    res = last.probe if last is not None and last.done and last.probe is not None else None
    if res is None:
        res = lab.probe(jacobian=False, connectivity=False)
    written += write_results(out, exp, res, extras=False)
    staged.commit()
    for path in written:
        print(f"wrote {staged.final(path)}")
    if stop["asked"]:
        print(f"stopped after {seen['steps']} of {total} steps", file=sys.stderr)
        return 130
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export every plot of an experiment or preset, headless: PNG, SVG, CSV."""
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad or not formats:
        raise UsageError(f"{PROG} export: --formats {args.formats!r}: choose from "
                         f"{','.join(EXPORT_FORMATS)}")
    if args.size is not None and (args.width is not None or args.height is not None):
        raise UsageError(f"{PROG} export: give --size WxH, or --width and --height, not both")
    size = args.size or (args.width or EXPORT_SIZE[0], args.height or EXPORT_SIZE[1])
    doc = _source(args)
    exp = doc.experiment
    if doc.params is not None:
        exp.weights = doc.params
    history = doc.history or None  # a .gradlab's: the training plot is written only then
    data = _data(args, doc)
    T, B = (data[0].shape[0], data[0].shape[1]) if data else (exp.task.seq_len,
                                                              exp.task.batch_size)
    _check_memory(_source_name(args), exp, T, B, jacobian=True, connectivity=True)
    params = None  # the .gradlab's weights (exp.weights), else drawn from the seed
    if args.weights:
        from core.weights import load_weights

        params = load_weights(args.weights, exp.model)
    # A headless command: never open a window, whatever the display.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    export = _gui("gui.export", "exporting plots")
    from core.outputs import OutputFolder

    # every file, or none (see core.outputs): an earlier export's plots are replaced
    # as a whole, the user's own files stay
    with OutputFolder(args.out, "--out", export.owns) as out:
        written = export.export_headless(exp, out.path, formats, params=params, data=data,
                                         history=history, size=size, scale=args.scale,
                                         theme=args.theme)
        out.commit()
    for path in written:
        print(f"wrote {out.final(path)}")
    return 0


EXPORT_SIZE = (900, 600)  # gui.export.DEFAULT_SIZE and MIN_SIZE: the parser imports no gui
EXPORT_MIN = (240, 160)


def _width_height(text: str, low: tuple[int, int], example: str) -> tuple[int, int]:
    """``WxH`` (or W×H) in whole pixels, from ``low`` up to 10000x10000."""
    parts = text.strip().replace("×", "x").lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. {example}, "
                                         f"got {text!r}")
    w, h = (int(p) for p in parts)
    if not (low[0] <= w <= 10_000 and low[1] <= h <= 10_000):
        raise argparse.ArgumentTypeError(f"width must be {low[0]} to 10000 pixels and "
                                         f"height {low[1]} to 10000, got {w}x{h}")
    return w, h


def _window_size(text: str) -> tuple[int, int]:
    """``--window-size WxH``."""
    return _width_height(text, (640, 400), "1280x720")


def _export_size(text: str) -> tuple[int, int]:
    """``--size WxH``: within gui.export's limits."""
    return _width_height(text, EXPORT_MIN, "900x600")


def _pixels(low: int) -> Any:
    """An argparse type: a whole number of pixels from ``low`` to 10000."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of pixels, "
                                             f"got {text!r}") from None
        if not low <= n <= 10_000:
            raise argparse.ArgumentTypeError(f"must be {low} to 10000 pixels, got {n}")
        return n

    return parse


def _scale(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.25 <= x <= 8:
        raise argparse.ArgumentTypeError(f"must be 0.25 to 8, got {text}")
    return x


def cmd_compare(args: argparse.Namespace) -> int:
    """Variants of an experiment over seed ensembles: compare.csv, .json, .png and .svg."""
    from core.compare import compare, variants
    from core.errors import ConfigError
    from core.paths import parse_vary

    vary = []
    for text in args.vary:
        try:
            vary.append(parse_vary(text))
        except ConfigError as exc:
            raise ConfigError(f"--vary {exc}") from None
    doc = _source(args)
    exp = doc.experiment
    if doc.params is not None:
        _warn(f"{args.experiment}: its saved weights are not used; every run starts "
              "from its seed's initialisation")
    data = _data(args, doc)
    variants(exp, vary)  # every path and value checked before anything is written
    from core.jobs import Control
    from core.outputs import COMPARE_OUTPUTS, OutputFolder
    from core.tracefile import writing

    # A headless command: never open a window, whatever the display.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    figure = _gui("gui.compare_plot", "drawing compare.png")
    with OutputFolder(args.out, "--out", COMPARE_OUTPUTS) as out:  # every file, or none
        progress = _CompareProgress()
        result = compare(exp, vary, seeds=args.seeds, train_steps=args.train_steps, data=data,
                         control=Control(progress.update))
        progress.close()
        csv, meta = out.path / "compare.csv", out.path / "compare.json"
        written = [writing(csv, lambda: result.write_csv(csv)),
                   writing(meta, lambda: result.write_json(meta))]
        written += figure.write_figure(result, out.path)
        out.commit()
    for path in written:
        print(f"wrote {out.final(path)}")
    for run in result.runs:
        if run.nonfinite:
            _warn(f"{run.variant}, seed {run.seed}: {run.nonfinite}")
    return 0


class _CompareProgress:
    """How far a comparison got, on stderr: in place on a terminal, else every few
    seconds; nothing for one that takes under a second."""

    def __init__(self, prefix: str = "compare") -> None:
        self.prefix = prefix
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.monotonic()
        self.width = 0

    def update(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - self.start < 1.0 or now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        line = f"{self.prefix} {fraction:4.0%}  {text}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self.width:
            sys.stderr.write("\n")


def cmd_sweep(args: argparse.Namespace) -> int:
    """A grid of settings × seeds, each probed (and trained), into DIR/sweep.zarr on Dask."""
    from core.errors import ConfigError
    from core.jobs import Cancelled
    from core.sweep import embedded_client, parse_grid, plan, run_sweep

    if args.scheduler and args.workers:
        raise UsageError(f"{PROG} sweep: --scheduler runs on an existing cluster; --workers "
                         "sizes the embedded one: give one of them")
    doc = _source(args)
    exp = doc.experiment
    axes = []
    for text in args.grid:
        try:
            axes.append(parse_grid(text, exp))
        except ConfigError as exc:
            raise ConfigError(f"--grid {exc}") from None
    sweep = plan(exp, axes, seeds=args.seeds, train_steps=args.train_steps)
    from core.backend import resolve_backend

    for device, dtype in {(p.experiment.backend.device, p.experiment.backend.dtype)
                          for p in sweep.points if p.experiment is not None}:
        resolve_backend(device, dtype)  # fail here, not on every worker: no GPU for 'cupy'
    if doc.params is not None:
        _warn(f"{args.experiment}: its saved weights are not used; every run starts "
              "from its seed's initialisation")
    out = _out_dir(args.out)
    source = f"--preset {args.source_preset}" if args.source_preset else str(args.experiment)
    command = " ".join([PROG, "sweep", source, *(f"--grid {g}" for g in args.grid),
                        f"--seeds {args.seeds}", f"--train-steps {args.train_steps}",
                        f"--out {args.out}"])
    progress = _SweepProgress()
    try:
        with _sweep_client(args, embedded_client) as client:
            stats = run_sweep(sweep, out, client=client, resume=args.resume, command=command,
                              on_progress=progress.update)
    except Cancelled:
        progress.close()
        from core.sweep import STORE_NAME, SweepStore

        status = SweepStore(out / STORE_NAME).status()
        kept = sum(1 for s in status.flat if s and not s.startswith("invalid"))
        _fail(f"interrupted; {kept} of {sweep.jobs} runs are kept in {out / STORE_NAME}: "
              "run the same command with --resume to compute only the rest")
        return 130
    progress.close()
    print(f"wrote {stats.path} ({stats.computed} runs computed, {stats.kept} already there, "
          f"{len(sweep.points) * sweep.seeds - stats.total} invalid)")
    return 0


def _sweep_client(args: argparse.Namespace, embedded: Any) -> Any:
    """The Dask client of ``--scheduler ADDRESS``, else an embedded LocalCluster's."""
    if not args.scheduler:
        return embedded(args.workers or None)
    import contextlib

    from distributed import Client

    from core.errors import UserError

    @contextlib.contextmanager
    def connect() -> Any:
        try:
            client = Client(args.scheduler, timeout="10s")
        except OSError as exc:  # refused, unreachable, timed out
            raise UserError(f"--scheduler {args.scheduler}: cannot reach a Dask scheduler "
                            f"there ({_one_line(exc)})") from None
        try:
            yield client
        finally:
            client.close()

    return connect()


class _SweepProgress:
    """Runs done / total, rate and time left, on stderr: a bar redrawn in place on a
    terminal, else a line every few seconds."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.width = 0

    def update(self, p: Any) -> None:
        now = time.monotonic()
        final = p.done == p.total
        if not final and now - self.last < (0.1 if self.tty else 5.0):
            return
        self.last = now
        eta = "--:--" if p.eta_s is None else _clock(p.eta_s)
        fill = int(24 * p.done / p.total) if p.total else 24
        line = (f"sweep [{'#' * fill}{'.' * (24 - fill)}] {p.done}/{p.total} runs  "
                f"{p.rate:.1f}/s  ETA {eta}")
        if self.tty:
            sys.stderr.write("\r" + line.ljust(self.width))
            self.width = len(line)
        elif p.done:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self.width:
            sys.stderr.write("\n")
            self.width = 0


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _seed_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def cmd_presets(args: argparse.Namespace) -> int:
    """List the lesson presets: name, then title."""
    from core.lessons import list_lessons

    lessons = list_lessons()
    width = max((len(n) for n, _ in lessons), default=0)
    for name, title in lessons:
        print(f"{name.ljust(width)}  {title}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Backends, devices and versions."""
    from core.backend import backend_info

    for key, value in backend_info().items():
        text = "; ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        print(f"{key}: {text}")
    return 0


# ----------------------------------------------------------------------------- parser


def _nonneg_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {n}")
    return n


EXPERIMENT_HELP = ("experiment file (.json) or saved experiment (.gradlab, whose weights "
                   "are used unless --weights is given and whose own arrays unless --input/"
                   "--target are; train continues its saved run)")
SEEDED_HELP = ("experiment file (.json) or saved experiment (.gradlab; its saved weights "
               "are not used)")
WEIGHTS_HELP = ("PyTorch-named weights (.safetensors or .npz); default: the weights saved in "
                "a .gradlab, else a fresh initialisation from the experiment's init section")


def _array_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", metavar="X.npy",
                   help="input sequences, shape (T, B, input_size); default: a batch of the "
                        "experiment's task (required when it has no task section)")
    p.add_argument("--target", metavar="Y.npy",
                   help="targets: (T, B, O) for many_to_many and output_recurrence, (B, O) for "
                        "many_to_one; integer classes (T, B) or (B,) for cross_entropy")


def _source_args(p: argparse.ArgumentParser, help: str = EXPERIMENT_HELP) -> None:
    """EXPERIMENT, or ``--preset NAME`` instead (see :func:`_source`)."""
    p.add_argument("experiment", metavar="EXPERIMENT", nargs="?", help=help)
    p.add_argument("--preset", metavar="NAME", dest="source_preset",
                   help="a lesson preset instead of a file (see `gradlab presets`)")


def _data_args(p: argparse.ArgumentParser) -> None:
    _source_args(p)
    p.add_argument("--weights", metavar="W", help=WEIGHTS_HELP)
    _array_args(p)
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write into")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Gradient Flow Lab: see how gradients flow through RNNs, LSTMs and GRUs. "
                    "Without a command, opens the desktop app.",
        epilog="Exit status: 0 success, 2 bad input (one 'error:' line), 1 internal error "
               f"(set {DEBUG_ENV}=1 for a traceback), 130 interrupted.")
    parser.add_argument("--preset", metavar="NAME",
                        help="open the app on a lesson preset (see `gradlab presets`)")
    parser.add_argument("--screenshot", metavar="F.png",
                        help="wait for the first results, save the window to F.png and exit "
                             "(runs offscreen when there is no display)")
    parser.add_argument("--window-size", metavar="WxH", type=_window_size,
                        help="open the window at this size in pixels, e.g. 1280x720 "
                             "(a screenshot's default: 1600x1000)")
    parser.set_defaults(func=cmd_app)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    p = sub.add_parser(
        "analyze", help="forward + BPTT on one batch; write trace.npz and summary.json",
        description="Run one forward pass and backpropagation through time on one batch "
                    "and write DIR/trace.npz (every per-step array: states, gates, dL/dh, "
                    "gradient norms, parameter gradients) and "
                    "DIR/summary.json (loss, spectral radii, gradient-norm ratio "
                    "||dL/dh_0|| / ||dL/dh_T-1|| per layer, backend).")
    _data_args(p)
    p.add_argument("--jacobian", action="store_true",
                   help="also write DIR/jacobian.npz: per layer, ||dh_T-1/dh_t|| for every t")
    p.add_argument("--connectivity", action="store_true",
                   help="also write DIR/connectivity.npy: the (T_out, T_in) connectivity map")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "train", help="train the model; write weights, history and the final trace",
        description="Train the experiment's model (its training section: optimizer, "
                    "clipping, truncated BPTT, teacher forcing) and write DIR/experiment.json, "
                    "DIR/weights.safetensors (trained weights, PyTorch names), "
                    "DIR/history.csv (one row per step), DIR/trace.npz and DIR/summary.json "
                    "of the final model.  A progress line goes to stderr.  Ctrl-C stops after "
                    "the current step and still writes every file (exit status 130); "
                    "exploding gradients stop training with a warning and keep the last "
                    "finite weights.")
    _data_args(p)
    p.add_argument("--steps", metavar="N", type=_nonneg_int,
                   help="number of updates (default: training.steps of the experiment)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "export", help="export every plot of an experiment or preset (png, svg, csv)",
        description="Run the probe the app runs (forward + BPTT on the experiment's task batch "
                    "drawn with init.seed, or on --input/--target) headless and export "
                    "everything every plot can show into DIR, each image --size pixels: "
                    "NAME.png and NAME.svg, or for a plot with selectors one per layer, "
                    "direction, gate or matrix block, named by the choice (gates.f.l0.png, "
                    "hidden.l0_reverse.png); NAME.csv (the plotted columns, a header row of "
                    "names, each naming its layer, matrix or block where the plot has several) "
                    "and NAME.KEY.csv for each heatmap (hidden.h.l0_reverse.csv: a header row "
                    "of column indices, each row led by its index); plus DIR/experiment.json.  "
                    "The training plot is written for a .gradlab with a training history.  "
                    "Non-finite values are written as nan, inf, -inf.")
    _source_args(p)
    p.add_argument("--weights", metavar="W", help=WEIGHTS_HELP)
    _array_args(p)
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write into")
    p.add_argument("--formats", default="png,svg,csv", metavar="LIST",
                   help="comma-separated, from png,svg,csv (default: all three)")
    p.add_argument("--size", metavar="WxH", type=_export_size,
                   help="size of every plot in pixels, "
                        f"from {EXPORT_MIN[0]}x{EXPORT_MIN[1]} to 10000x10000 "
                        f"(default: {EXPORT_SIZE[0]}x{EXPORT_SIZE[1]})")
    # the two halves of --size, as earlier versions took them
    p.add_argument("--width", metavar="PX", type=_pixels(EXPORT_MIN[0]), help=argparse.SUPPRESS)
    p.add_argument("--height", metavar="PX", type=_pixels(EXPORT_MIN[1]), help=argparse.SUPPRESS)
    p.add_argument("--scale", metavar="S", type=_scale, default=1.0,
                   help="PNG resolution factor, 0.25 to 8: a PNG is S times --size "
                        "(default: 1; 2 for sharp slides)")
    p.add_argument("--theme", choices=("dark", "light"), default="dark",
                   help="dark: the window's look (default); light: dark text on white, "
                        "for print.  Only the exported images change")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "compare", help="compare variants of an experiment over seeds: compare.csv and a figure",
        description="Run every variant of an experiment or preset — each --vary PATH=V1,V2,... "
                    "sets a dotted field of the experiment (init.forget_bias, "
                    "init.scales.recurrent, model.layers.0.cell, training.clip.mode, "
                    "task.seq_len, ...) to each value; several --vary give their product — "
                    "once per seed, init.seed + 0 ... N-1: training --train-steps steps when "
                    "given, then one probe of its weights.  Runs with the same seed see the "
                    "same data and share the initial weights the change leaves alone.  Writes "
                    "DIR/compare.csv (long form: variant,key,t,mean,low,high; key gradnorm.L "
                    "per timestep t, and when trained loss, grad_norm_before and "
                    "grad_norm_after per step t; mean over the seeds, low-high the band: "
                    "min-max below 10 seeds, else the 2.5th-97.5th percentile), "
                    "DIR/compare.json (the band rule, seeds, what each variant changed and "
                    "shared) and DIR/compare.png, DIR/compare.svg (mean curves with bands, "
                    "log scale).  A changed layer cell turns off what it cannot have "
                    "(peepholes, an activation), as compare.json notes.")
    _source_args(p, SEEDED_HELP)
    p.add_argument("--vary", metavar="PATH=V1,V2", action="append", required=True,
                   help="a dotted field path and the values to compare, comma-separated "
                        "(numbers, true/false, null, or text); repeat for a product")
    p.add_argument("--seeds", metavar="N", type=_seed_count, default=1,
                   help="runs per variant, seeds init.seed + 0 ... N-1 (default: 1)")
    p.add_argument("--train-steps", metavar="N", type=_nonneg_int, default=0,
                   help="training steps before the probe (default: 0, the initial weights)")
    _array_args(p)
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write into")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "sweep", help="a grid of settings x seeds on Dask: DIR/sweep.zarr for a phase diagram",
        description="Run every point of a grid of settings - each --grid PATH=VALUES is one "
                    "axis: a dotted field of the experiment (init.scales.recurrent, "
                    "init.forget_bias, model.layers.0.cell, task.seq_len, ...) and its values, "
                    "a,b,c or START:STOP:N (N points, linear) or START:STOP:Nlog (log-spaced) - "
                    "once per seed, init.seed + 0 ... N-1: probe the initial weights (layer 0 "
                    "gradient norms, their first/last ratio, the spectral radius of "
                    "weight_hh_l0, the loss) and, with --train-steps, train and record the "
                    "final and validation loss and whether it diverged.  Writes DIR/sweep.zarr "
                    "(open it with xarray.open_zarr): one dimension per --grid, seed and t.  A "
                    "changed layer cell turns off what it cannot have (notes); a point that is "
                    "still invalid is recorded in 'status'.  Results are written as runs "
                    "finish; Ctrl-C keeps them and --resume computes only the rest.  The jobs "
                    "run on a Dask LocalCluster (one single-threaded process per core), or on "
                    "an existing cluster with --scheduler (its workers must import gradlab: "
                    "install it, or start them with PYTHONPATH at its folder).")
    _source_args(p, SEEDED_HELP)
    p.add_argument("--grid", metavar="PATH=VALUES", action="append", required=True,
                   help="one axis: a dotted field path and a,b,c or START:STOP:N or "
                        "START:STOP:Nlog; repeat for more axes (their product)")
    p.add_argument("--seeds", metavar="N", type=_seed_count, default=1,
                   help="runs per grid point, seeds init.seed + 0 ... N-1 (default: 1)")
    p.add_argument("--train-steps", metavar="N", type=_nonneg_int, default=0,
                   help="training steps after the probe (default: 0, no training)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for sweep.zarr")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786 (default: an "
                        "embedded LocalCluster)")
    p.add_argument("--workers", metavar="N", type=_seed_count, default=None,
                   help="processes of the embedded cluster (default: one per CPU core)")
    p.add_argument("--resume", action="store_true",
                   help="finish the sweep already in DIR/sweep.zarr: compute only what it lacks")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("presets", help="list lesson presets: name, then title",
                       description="List the lesson presets, one a line: its name, then its "
                                   "title.  Open one with `gradlab --preset NAME`.")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("info", help="backends, devices and versions",
                       description="Print the Python, NumPy and CuPy versions, the BLAS, "
                                   "whether the compiled CPU steps are in use (and if not, "
                                   "why: no C compiler, GRADLAB_COMPILED=0, ...), the GPUs "
                                   "CuPy sees and which backend 'auto' picks, one "
                                   "'key: value' a line.")
    p.set_defaults(func=cmd_info)
    return parser


# ----------------------------------------------------------------------------- entry point


def _fail(message: str) -> None:
    print(f"error: {_one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return the exit status.

    As the program itself (``argv`` None), a command interrupted during a long LAPACK
    call (core.jobs.run_cancellable) ends the process at once: the call runs on in its
    thread, and the BLAS library's exit handlers would wait for it, or hang."""
    status = _main(argv)
    if argv is None:
        from core.jobs import abandoned_calls

        if abandoned_calls():
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(status)
    return status


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command and (args.preset or args.screenshot or args.window_size):
            raise UsageError(f"{PROG}: --preset, --screenshot and --window-size open the app; "
                             "they do not go "
                             f"with '{args.command}' (see {PROG} --help)")
        if not args.command:
            return int(args.func(args) or 0)
        # headless: SIGTERM and SIGHUP stop as Ctrl-C does, cleaning up what they leave
        previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS[1:]}
        try:
            return int(args.func(args) or 0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        _fail(str(exc))
        return 2
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except MemoryError:
        _fail("out of memory; use a smaller hidden size, sequence length or batch")
        return 2
    except Exception as exc:
        from core.backend import BackendError
        from core.errors import UserError

        if isinstance(exc, (UserError, BackendError)):
            _fail(str(exc))
            return 2
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} — please report it, with the "
              f"traceback that {DEBUG_ENV}=1 prints")
        return 1


if __name__ == "__main__":
    sys.exit(main())
