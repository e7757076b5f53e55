"""What :func:`core.trace` keeps between calls on one experiment.

A pass allocates tens of megabytes of per-step arrays.  Fresh memory is zeroed by the
kernel page by page on first write, and a new :class:`~core.network.Network` per call
(with a new :class:`~core.workspace.Workspace`) made every ``trace`` pay those page
faults again: 1.3–2× the time of ``Network.run`` at middle sizes.  So an experiment
carries a :class:`TraceCache`: the resolved backend, the drawn initial weights and the
workspace of its last model, reused while the model, the initialisation and the
backend stay as they are, and dropped the moment any of them changes.

Nothing stale can be served: the network is rebuilt on every call from the
experiment's current weights (a cheap copy of the parameters, with the usual shape
checks), a workspace only lends memory that nothing refers to any more (arrays a
caller still holds are never reused), and every array a pass reads it has written in
that pass.  The cache lives on the experiment, so dropping the experiment frees it;
a copy of the experiment starts with an empty one.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import network
from .backend import Backend, resolve_backend
from .experiment import BackendConfig, Experiment, InitConfig, ModelConfig
from .network import Network
from .workspace import Workspace

_ATTRIBUTE = "_trace_cache"


class TraceCache:
    """The backend, initial weights and workspace of one experiment's last model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held while a call uses the kept network
        self._clear()

    def _clear(self) -> None:
        self._model: ModelConfig | None = None  # a private copy: in-place edits show up
        self._backend_config: BackendConfig | None = None
        self._backend: Backend | None = None
        self._workspace: Workspace | None = None
        self._init: InitConfig | None = None
        self._init_params: dict[str, Any] | None = None
        self._init_model: ModelConfig | None = None
        self._net: Network | None = None
        self._net_source: Mapping[str, Any] | None = None  # what net.params hold, if fixed
        self._budget = 0.0  # bytes of passes allowed before free memory is read again
        self._spent = 0.0
        # The last memory estimate: (model copy, T, B, dtype, its bytes), one tuple so
        # that a second thread reads a whole one.
        self._need: tuple[Any, ...] | None = None

    # A deep copy of an experiment starts with nothing cached: a workspace holds a lock
    # and memory that belong to one experiment.
    def __deepcopy__(self, memo: dict[int, Any]) -> TraceCache:
        return TraceCache()

    def backend_and_workspace(self, exp: Experiment) -> tuple[Backend, Workspace]:
        """The backend of ``exp.backend`` and the workspace of ``exp.model`` on it: those
        of the last call while neither changed, new ones (the old released) otherwise."""
        with self._lock:
            if self._backend is None or exp.backend != self._backend_config:
                self._backend = resolve_backend(exp.backend.device, exp.backend.dtype)
                self._backend_config = copy.deepcopy(exp.backend)
                self._workspace = None
            if self._workspace is None or exp.model != self._model:
                self._workspace = Workspace(self._backend.xp)
                self._model = copy.deepcopy(exp.model)
            return self._backend, self._workspace

    def network(self, exp: Experiment, params: Mapping[str, Any]) -> _Lease:
        """A network of ``exp.model`` on ``exp.backend`` holding ``params`` (copied and
        checked as :class:`~core.network.Network` does) with the workspace of earlier
        passes, for a ``with`` block: the last call's network, its parameters overwritten
        in place, while the model and backend are unchanged; else a new one.  A call on
        another thread while it is in use gets a network and workspace of its own."""
        return _Lease(self, exp, params)

    def _lend(self, exp: Experiment, params: Mapping[str, Any]) -> Network:
        """The kept network (the caller holds ``_busy``), updated to ``params``."""
        backend, workspace = self.backend_and_workspace(exp)
        net = self._net
        if net is None or net.mem is not workspace:
            net = self._net = Network(exp.model, params, backend)
            net.mem = workspace
        elif not (params is self._net_source or _overwrite(net.params, params)):
            net = self._net = Network(exp.model, params, backend)  # raises if wrong
            net.mem = workspace
        # Read-only initial weights need no copy next time; a user's may change.
        self._net_source = params if params is self._init_params else None
        return net

    def initial_params(self, exp: Experiment) -> Mapping[str, Any]:
        """The weights ``init_params`` draws for ``exp.model`` and ``exp.init`` (float64
        arrays, read-only), drawn again only when either changed."""
        from .init import init_params

        with self._lock:
            if (self._init_params is None or exp.init != self._init
                    or exp.model != self._init_model):
                params = init_params(exp.model, exp.init)
                for a in params.values():
                    a.setflags(write=False)
                self._init_params = params
                self._init = copy.deepcopy(exp.init)
                self._init_model = copy.deepcopy(exp.model)
            return self._init_params

    def check_memory(self, exp: Experiment, T: int, B: int) -> None:
        """Raise MemoryLimitError when a pass of ``T`` steps and batch ``B`` would not fit
        (:func:`core.network.check_memory`).  Reading the free memory costs tens of
        microseconds, a tenth of the smallest passes, so it is read again only once the
        passes since the last reading could have taken 5 % of what was free then: a
        caller who keeps every result still meets the limit."""
        dtype = exp.backend.dtype
        last = self._need  # estimated again only when the model or the sizes change
        if last is not None and last[1:4] == (T, B, dtype) and last[0] == exp.model:
            need = last[4]
        else:
            need = network.estimate_trace_bytes(exp.model, T, B, dtype)
            self._need = (copy.deepcopy(exp.model), T, B, dtype, need)
        with self._lock:
            if self._spent + need <= self._budget:
                self._spent += need
                return
        network.check_memory(exp.model, T, B, dtype)
        with self._lock:
            self._budget = 0.05 * network.available_memory()
            self._spent = need

    def release(self) -> None:
        """Forget everything: the workspace's memory goes back to the system."""
        with self._lock:
            self._clear()

    @property
    def held_bytes(self) -> int:
        """Bytes of free buffers the workspace keeps for the next call."""
        ws = self._workspace
        return 0 if ws is None else ws.held_bytes


class _Lease:
    """``with cache.network(exp, params) as net``: the kept network while no other call
    holds it, else a network of its own (a plain class: a generator-based context
    manager cost more than the rest of the lease at batch 1)."""

    __slots__ = ("cache", "exp", "held", "params")

    def __init__(self, cache: TraceCache, exp: Experiment, params: Mapping[str, Any]):
        self.cache, self.exp, self.params, self.held = cache, exp, params, False

    def __enter__(self) -> Network:
        cache, exp = self.cache, self.exp
        if not cache._busy.acquire(blocking=False):
            return Network(exp.model, self.params,
                           resolve_backend(exp.backend.device, exp.backend.dtype))
        self.held = True
        try:
            return cache._lend(exp, self.params)
        except BaseException:
            self.held = False
            cache._busy.release()
            raise

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.held = False
            self.cache._busy.release()


def _overwrite(own: dict[str, Any], params: Mapping[str, Any]) -> bool:
    """Copy ``params`` into a network's parameters ``own`` in place (cast to their dtype,
    as the network's own copy would be); False, with nothing changed, unless both have
    the same names and shapes."""
    if own.keys() != params.keys():
        return False
    pairs = [(a, params[n]) for n, a in own.items()]
    for a, p in pairs:  # np.shape only for what has no shape of its own (nested lists)
        if getattr(p, "shape", None) != a.shape and np.shape(p) != a.shape:
            return False
    for a, p in pairs:
        a[...] = p
    return True


def cache_of(exp: Experiment) -> TraceCache:
    """The experiment's cache, made on first use.  An object that cannot carry one
    gets a new cache each call (correct, only slower)."""
    cache = getattr(exp, _ATTRIBUTE, None)
    if isinstance(cache, TraceCache):
        return cache
    cache = TraceCache()
    try:
        setattr(exp, _ATTRIBUTE, cache)
    except AttributeError:
        pass
    return cache
