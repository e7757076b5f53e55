"""The network: stacked, optionally bidirectional layers, a linear head and a loss.

:meth:`Network.run` does one forward pass over a sequence and backpropagation
through time, and returns a :class:`~core.tracing.Trace` of every per-step array.

Two loop shapes cover the three design patterns:

- ``many_to_many`` / ``many_to_one`` (hidden-to-hidden recurrence): layer by layer,
  and within a layer time step by time step.  All timesteps' input projections are
  one matrix product before the loop, each step one product for all gates, and the
  parameter gradients one product over all timesteps after the backward loop.
- ``output_recurrence`` (no hidden-to-hidden connection; the previous output — the
  target under teacher forcing, else the model's own — is fed back through
  ``weight_oh_l0``): time step by time step, and within a step layer by layer.

Truncated BPTT with window k cuts the recurrent gradient at every k-th step of
each direction's processing order (the forward cell counts t = 0, 1, …; the reverse
cell t = T−1, T−2, …): the gradient from step s does not reach step s−1 when
s is a multiple of k.  Parameters still receive the gradient of every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from . import scan as time_scan
from .backend import Backend
from .cells import CELLS, timeloop
from .cells.lstm import step_constants as lstm_constants
from .errors import DataError, MemoryLimitError, WeightsError
from .experiment import ModelConfig
from .jobs import Control
from .layout import INPUT_ONLY, directions, param_shapes
from .losses import LOSSES, softmax
from .memory import available_memory, format_bytes
from .tracing import LayerTrace, Trace
from .workspace import Workspace


@dataclass
class _Dir:
    """One cell of one layer (a direction) during a pass: constants and storage."""

    key: str  # trace key, e.g. "l0_reverse"
    k: int
    suffix: str
    cell: ModuleType
    H: int
    reverse: bool
    P: dict[str, Any]
    S: dict[str, Any] = field(default_factory=dict)
    X: Any = None  # the layer's input (T, B, D)
    # dL/d(input projection) and dL/d(recurrent projection) (may alias): gate-major
    # (G, T, B, H) views of time-major memory (grad_buffer)
    dxp: Any = None
    dhp: Any = None
    dh: Any = None  # total dL/dh_t (T, B, H)
    dc: Any = None  # total dL/dc_t (T, B, H), LSTM only
    h0: Any = None  # initial state (B, H); None means zeros
    c0: Any = None
    dh0: Any = None  # dL/d(initial state), after the backward pass
    dc0: Any = None

    def order(self, T: int) -> range:
        return range(T - 1, -1, -1) if self.reverse else range(T)

    def prev_rows(self, times: slice, h_first: Any, c_first: Any) -> list[tuple[slice, Any, Any]]:
        """For the timesteps ``times``, the states each step started from: triples of a
        sub-slice of ``times`` and the (n, B, H) rows of h and c at t−1 (forward) or t+1
        (reverse) beside it (c None without a cell state); the first step processed
        starts from ``h_first``, ``c_first``."""
        T = self.S["h"].shape[0]
        c = self.S.get("c")
        lo, hi = times.start, times.stop
        first = T - 1 if self.reverse else 0
        out = []
        if lo <= first < hi:
            out.append((slice(first, first + 1), h_first[None], None if c is None else c_first[None]))
            lo, hi = (lo, hi - 1) if self.reverse else (lo + 1, hi)
        if hi > lo:
            before = slice(lo + 1, hi + 1) if self.reverse else slice(lo - 1, hi - 1)
            out.append((slice(lo, hi), self.S["h"][before], None if c is None else c[before]))
        return out


class Network:
    """A recurrent network on a backend.

    ``params`` maps PyTorch parameter names to arrays (copied onto the backend in
    its dtype; ``net.params`` can be updated in place by an optimizer).  The large
    arrays of each pass come from ``net.mem``, which reuses the memory of earlier
    passes that nothing refers to any more.
    """

    def __init__(self, model: ModelConfig, params: Mapping[str, Any], backend: Backend):
        self.model = model
        self.backend = backend
        self.xp = backend.xp
        shapes = param_shapes(model)
        missing = [n for n in shapes if n not in params]
        if missing:
            raise WeightsError(f"missing parameter(s): {', '.join(missing)}")
        extra = [n for n in params if n not in shapes]
        if extra:
            raise WeightsError(f"unexpected parameter(s) for this model: {', '.join(extra)}")
        for name, shape in shapes.items():
            got = tuple(np.shape(params[name]))
            if got != shape:
                raise WeightsError(f"{name}: expected shape {shape}, got {got}")
        # Always a copy: the network's parameters are its own to update in place, never
        # the caller's arrays (a float64 NumPy asarray would otherwise share them).
        self.params: dict[str, Any] = {n: backend.xp.array(params[n], dtype=backend.dtype)
                                       for n in shapes}
        self.mem = Workspace(self.xp)
        # Checked every few timesteps: a cancelled pass raises core.jobs.Cancelled.
        self.control: Control | None = None
        # minGRU/minLSTM as one scan over time (core.scan): True, False, or None for
        # wherever it is the faster path: never where the compiled time loop runs the
        # cell (it measured 1.3–2× faster than the scan at every size), else from
        # core.scan.worth_scanning.
        self.scan: bool | None = None

    def _use_scan(self, D: _Dir, T: int) -> bool:
        """Whether direction ``D`` runs its T steps as a scan (core.scan), not a loop."""
        if D.cell.HIDDEN_WEIGHTS:
            return False
        if self.scan is not None:
            return self.scan
        if timeloop.kernels_for(self.backend, D.cell, D.P) is not None:
            return False
        return time_scan.worth_scanning(T, D.X.shape[1], D.H)

    def checkpoint(self, s: int) -> None:
        """Between steps: stop a cancelled pass (every 4th step; a check is cheap)."""
        if s % 4 == 0 and self.control is not None:
            self.control.check()

    # ------------------------------------------------------------------ helpers

    def _dirs(self) -> list[list[_Dir]]:
        """Per layer, its directions with the step constants of the current params."""
        xp, dt, p = self.xp, self.backend.dtype, self.params
        kernels = self._kernels()
        out = []
        for k, layer in enumerate(self.model.layers):
            cell, H = CELLS[layer.cell], layer.hidden_size
            row = []
            for d in directions(layer):
                P: dict[str, Any] = {"activation": layer.activation}
                if kernels is not None:
                    P["fused"] = kernels
                if layer.cell == "lstm":
                    P.update(lstm_constants(xp, dt))
                    if layer.peephole:
                        P["peep"] = p[f"weight_peep_l{k}{d}"]
                if layer.cell == "cifg":
                    P.update(CELLS["cifg"].step_constants(xp, dt))
                if layer.cell == "gru":  # b_hn, inside r ⊙ (W_hn h + b_hn); none with feedback
                    b_hh = p.get(f"bias_hh_l{k}{d}")
                    P["b_hn"] = b_hh[2 * H:] if b_hh is not None else xp.zeros(H, dtype=dt)
                row.append(_Dir(f"l{k}{d}", k, d, cell, H, d == "_reverse", P))
            out.append(row)
        return out

    def _kernels(self) -> dict[str, Any] | None:
        """The fused elementwise steps (core.cells.fused): on a GPU, or compiled for the
        CPU; None where the cells run their NumPy steps."""
        return self.backend.kernels

    def _check_data(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Move ``x`` (T, B, D) and ``y`` onto the backend, checking shapes."""
        m, xp = self.model, self.xp
        if getattr(x, "ndim", None) != 3:
            raise DataError(f"input: expected an array of shape (T, B, D), got shape {np.shape(x)}")
        T, B, D = x.shape
        if D != m.input_size:
            raise DataError(f"input: last axis must be input_size = {m.input_size}, got {D}")
        if T < 1 or B < 1:
            raise DataError(f"input: needs at least one timestep and one sample, got {x.shape}")
        x = self.backend.asarray(x)
        if y is None:
            return x, None
        seq = m.pattern != "many_to_one"
        if m.loss == "cross_entropy":
            want = (T, B) if seq else (B,)
            y_arr = np.asarray(y) if not hasattr(y, "__cuda_array_interface__") else y
            if tuple(y_arr.shape) == (*want, 1):
                y_arr = y_arr.reshape(want)
            if tuple(y_arr.shape) != want:
                raise DataError(f"target: expected integer classes of shape {want}, "
                                f"got shape {tuple(y_arr.shape)}")
            y_host = self.backend.to_numpy(y_arr) if self.backend.name == "cupy" else y_arr
            if not np.issubdtype(y_host.dtype, np.integer):
                if not np.all(np.isfinite(y_host)) or np.any(y_host != np.round(y_host)):
                    raise DataError("target: cross_entropy needs integer class labels")
            if y_host.size and (y_host.min() < 0 or y_host.max() >= m.output_size):
                raise DataError(f"target: class labels must lie in 0…{m.output_size - 1}, "
                                f"got {int(y_host.min())}…{int(y_host.max())}")
            return x, xp.asarray(y_host.astype(np.int64))
        want = (T, B, m.output_size) if seq else (B, m.output_size)
        if tuple(np.shape(y)) != want:
            raise DataError(f"target: expected shape {want}, got {tuple(np.shape(y))}")
        return x, self.backend.asarray(y)

    # ------------------------------------------------------------------ public API

    def run(self, x: Any, y: Any, *, tbptt: int | None = None, teacher_mask: Any = None,
            need_backward: bool = True, frozen: Trace | None = None,
            d_output: Any = None, initial: Mapping[str, Any] | None = None,
            loss_scale: float = 1.0, input_grad: bool = False,
            param_grads: bool = True) -> Trace:
        """Forward pass, loss and (unless ``need_backward`` is False) BPTT.

        x: (T, B, D).  y: (T, B, O) or (B, O) for ``many_to_one``; integer classes
        (T, B) or (B,) for ``cross_entropy``.  ``teacher_mask`` (T,) bool, only for
        ``output_recurrence``: step t is fed the target y_{t-1} where True, the
        model's own previous output where False (default: all True).  ``frozen``
        (a Trace of the same inputs) makes the states carried across truncation
        boundaries constants, as truncated BPTT treats them — for gradient checks.
        ``d_output`` (the shape of the output) replaces dL/d(output) to backpropagate
        any cotangent instead of the loss's (the loss is then NaN).  ``initial`` maps
        layer keys to initial states ``(h0, c0)`` (B, H) (c0 None except for LSTM);
        the trace then holds their gradients in ``dh0``/``dc0``.  ``loss_scale``
        multiplies the loss and its gradient (a window's share of a longer sequence).
        ``input_grad`` also computes dL/dx into ``trace.dx`` (T, B, D); it costs one more
        product over all steps, which nothing else needs.  ``param_grads`` False skips
        the weight gradients (``trace.grads`` is then empty): for passes that want only
        state or input gradients, such as the connectivity map's.
        """
        x, y = self._check_data(x, y)
        if tbptt is not None and tbptt < 1:
            raise DataError(f"tbptt: window must be at least 1, got {tbptt}")
        if initial and self.model.pattern == "output_recurrence":
            raise DataError("initial states: output_recurrence carries no hidden state")
        with (np.errstate(all="ignore"), self.mem.pass_(),
              self.backend.whole_pass(self._largest_product(x))):
            if self.model.pattern == "output_recurrence":
                return self._run_feedback(x, y, tbptt, teacher_mask, need_backward, frozen,
                                          d_output, loss_scale, input_grad, param_grads)
            return self._run_recurrent(x, y, tbptt, need_backward, frozen, d_output, initial,
                                       loss_scale, input_grad, param_grads)

    def _largest_product(self, x: Any) -> float:
        """FLOPs of the largest product of a pass over ``x``: below the backend's
        threshold the whole pass runs on one BLAS thread (a second thread waiting to be
        scheduled can stall a tiny product for milliseconds)."""
        T, B, _ = x.shape
        d_in, largest = self.model.input_size, 0
        for layer in self.model.layers:
            GH = CELLS[layer.cell].BLOCKS * layer.hidden_size
            largest = max(largest, GH * max(d_in, layer.hidden_size))
            d_in = layer.hidden_size * (2 if layer.bidirectional else 1)
        return 2.0 * T * B * largest

    def loss(self, x: Any, y: Any, **kw: Any) -> float:
        """The loss alone (a forward pass)."""
        return self.run(x, y, need_backward=False, **kw).loss

    def carry_back(self, key: str, states: dict[str, Any], first: tuple[Any, Any],
                   carry: tuple[Any, Any]) -> tuple[Any, Any, Any]:
        """BPTT through the one direction ``key`` (``"l0"``, ``"l1_reverse"``, …) over
        the given states, for any covectors rather than a loss's gradient (the batch
        axis holds them: core.analysis carries H unit covectors back at once).

        ``states``: the direction's arrays as its forward pass stores them, for the T
        steps taken (``cell.alloc``: (T, B, H), gates (G, T, B, H)); ``first``: (h, c)
        (B, H), the state before the first step taken (c None without a cell state);
        ``carry``: (dh, dc) (B, H), arriving from beyond the last step taken.  Returns
        dL/dh_t (T, B, H) and (dh, dc), the carries before the first step."""
        D = next((D for row in self._dirs() for D in row if D.key == key), None)
        if D is None or not D.cell.HIDDEN_WEIGHTS:
            raise ValueError(f"carry_back: no recurrent direction {key!r}")
        xp, dt = self.xp, self.backend.dtype
        T, B, H = states["h"].shape
        D.S, D.X = states, xp.empty((T, B, 0), dtype=dt)
        D.h0, D.c0 = first
        nothing = xp.broadcast_to(xp.zeros((1, 1, H), dtype=dt), (T, B, H))  # no loss
        with np.errstate(all="ignore"), self.mem.pass_():
            self._backward_dir(D, nothing, None, None, want_dx=False, carry=carry)
        return D.dh, D.dh0, D.dc0

    def _loss_gradient(self, trace: Trace, y: Any, d_output: Any, loss_scale: float) -> Any:
        """Set ``trace.loss`` and return dL/d(output), or ``d_output`` when one is given;
        None when there is no target and so nothing to backpropagate."""
        if d_output is not None:
            return self.backend.asarray(d_output).copy()
        if y is None:
            return None
        trace.loss, d_out = LOSSES[self.model.loss](self.xp, trace.output, y)
        if loss_scale != 1.0:
            trace.loss *= loss_scale
            d_out *= loss_scale
        return d_out

    # ------------------------------------------------------------------ hidden recurrence

    def _forward_dir(self, D: _Dir, X: Any, tbptt: int | None, frozen: Trace | None) -> None:
        xp, p, dt = self.xp, self.params, self.backend.dtype
        T, B, _ = X.shape
        H, G = D.H, D.cell.BLOCKS
        sfx = f"_l{D.k}{D.suffix}"
        W_ih, W_hh = p["weight_ih" + sfx], p.get("weight_hh" + sfx)
        b_ih, b_hh = p["bias_ih" + sfx], p.get("bias_hh" + sfx)
        # Fold b_hh into the input projection, except GRU's b_hn, which r multiplies (the
        # cell adds it in the step: P["b_hn"]).  minGRU/minLSTM have no b_hh (nor W_hh).
        bias = (b_ih + b_hh if b_hh is not None else b_ih.copy()).reshape(G, 1, 1, H)
        if D.cell.NAME == "gru":
            bias[2, 0, 0] = b_ih[2 * H:]
        fold = timeloop.folds_bias(self.backend, D.cell, D.P)  # the loop adds the biases
        xproj = project(xp, X, W_ih, G, self.mem.empty((G, T, B, H), dt),  # all steps
                        None if fold else bias, self.control)
        D.X = X
        D.S = D.cell.alloc(self.mem, T, B, H, dt)
        W_hhT = (None if W_hh is None  # (G, H, H)
                 else xp.ascontiguousarray(gate_major(W_hh, G).transpose(0, 2, 1)))
        hproj = xp.empty((G, B, H), dtype=dt)
        zeros = xp.zeros((B, H), dtype=dt)
        order = D.order(T)
        fz = frozen.layers[D.key] if frozen is not None and tbptt else None
        h_prev = zeros if D.h0 is None else D.h0
        c_prev = zeros if D.c0 is None else D.c0
        if self._use_scan(D, T):  # minGRU/minLSTM: the whole sequence as one scan
            time_scan.forward(xp, D, xproj, h_prev, None if fz is None else fz.h, tbptt)
            return
        with self.backend.step_loop(2.0 * B * H * G * H):
            if not timeloop.run_forward(self, D, xproj, W_hh, h_prev, c_prev, fz, tbptt,
                                        bias if fold else None):
                if fold:
                    xproj += bias
                self._forward_steps(D, order, xproj, hproj, W_hhT, h_prev, c_prev, zeros,
                                    fz, tbptt)

    def _forward_steps(self, D: _Dir, order: range, xproj: Any, hproj: Any, W_hhT: Any,
                       h_prev: Any, c_prev: Any, zeros: Any, fz: Any,
                       tbptt: int | None) -> None:
        """The forward loop: one product for all gates, then the cell's step."""
        xp, S = self.xp, D.S
        for s, t in enumerate(order):
            self.checkpoint(s)
            if s > 0:
                tp = order[s - 1]
                if fz is not None and s % tbptt == 0:  # a constant at the window start
                    h_prev = fz.h[tp]
                    c_prev = fz.c[tp] if fz.c is not None else zeros
                else:
                    h_prev = S["h"][tp]
                    c_prev = S["c"][tp] if "c" in S else zeros
            if W_hhT is None:  # minGRU/minLSTM: the gates see only the input
                D.cell.forward(xp, S, t, xproj[:, t], None, h_prev, c_prev, D.P)
                continue
            xp.matmul(h_prev, W_hhT, out=hproj)
            D.cell.forward(xp, S, t, xproj[:, t], hproj, h_prev, c_prev, D.P)

    def _backward_dir(self, D: _Dir, dH: Any, tbptt: int | None, grads: dict | None,
                      want_dx: bool = True, carry: tuple[Any, Any] | None = None) -> Any:
        """BPTT through one direction; ``dH`` (T, B, H) from above.  Returns dL/dX, or
        None unless ``want_dx``; the weight gradients go into ``grads`` (none if None).
        ``carry`` (dL/dh, dL/dc) (B, H): what arrives from beyond the last step (zeros
        if None; dL/dc None without a cell state).

        First, on the NumPy steps, every local derivative that needs only the forward
        pass, for all steps at once (fused kernels derive them in the step instead); then
        the step loop; then the weight gradients and dL/dX, one product each over all
        steps."""
        xp, p, dt = self.xp, self.params, self.backend.dtype
        T, B, _ = D.X.shape
        H, G = D.H, D.cell.BLOCKS
        sfx = f"_l{D.k}{D.suffix}"
        W_ih, W_hh = p["weight_ih" + sfx], p.get("weight_hh" + sfx)
        lstm = D.cell.HAS_CELL_STATE
        mem = self.mem
        self._grad_buffers(D, T, B)
        zeros = xp.zeros((B, H), dtype=dt)
        h_first = zeros if D.h0 is None else D.h0
        c_first = zeros if D.c0 is None else D.c0
        dh_carry = xp.zeros((B, H), dtype=dt) if carry is None else carry[0].astype(dt)
        dc_carry = zeros if carry is None or carry[1] is None else carry[1].astype(dt)
        order = D.order(T)
        if self._use_scan(D, T):  # minGRU/minLSTM: one scan back over time (core.scan)
            D.dh0, D.dc0 = time_scan.backward(xp, D, dH, h_first, tbptt), None
            self._dir_param_grads(D, h_first, c_first, grads)
            dX = (back_project(xp, D.dxp, W_ih, mem.empty((T, B, D.X.shape[2]), dt))
                  if want_dx else None)
            D.dxp = D.dhp = None
            return dX
        L = D.cell.factor_arrays(mem, D.S, D.P, D.dxp, D.dhp, D.dc)
        for rows, h_prev, c_prev in D.prev_rows(slice(0, T), h_first, c_first):
            D.cell.local(xp, D.S, rows, h_prev, c_prev, D.P, L)
        with self.backend.step_loop(2.0 * B * H * G * H):
            carries = timeloop.run_backward(self, D, dH, W_hh, tbptt, h_first, c_first,
                                            carry=(dh_carry, dc_carry) if carry else None)
            if carries is None:  # the Python loop over the steps
                carries = self._backward_steps(D, order, dH, W_hh, L, dh_carry, dc_carry,
                                               zeros, tbptt, h_first, c_first)
            dh_carry, dc_carry = carries
        D.dh0, D.dc0 = dh_carry, (dc_carry if lstm else None)  # dL/d(initial state)
        self._dir_param_grads(D, h_first, c_first, grads)
        dX = None
        if want_dx:
            K = D.X.shape[2]
            dX = back_project(xp, D.dxp, W_ih, mem.empty((T, B, K), dt))
        D.dxp = D.dhp = None  # no longer needed: release them before the layer below runs
        return dX

    def _grad_buffers(self, D: _Dir, T: int, B: int) -> None:
        """A direction's gradient storage for a pass of T steps, batch B: dL/d(projections)
        (GRU keeps the recurrent one apart), dL/dh_t and, for an LSTM, dL/dc_t."""
        mem, dt, G, H = self.mem, self.backend.dtype, D.cell.BLOCKS, D.H
        D.dxp = grad_buffer(mem, G, T, B, H, dt)
        D.dhp = D.dxp if D.cell.NAME != "gru" else grad_buffer(mem, G, T, B, H, dt)
        D.dh = mem.empty((T, B, H), dt)
        D.dc = mem.empty((T, B, H), dt) if D.cell.HAS_CELL_STATE else None

    def _backward_steps(self, D: _Dir, order: range, dH: Any, W_hh: Any, L: dict,
                        dh_carry: Any, dc_carry: Any, zeros: Any, tbptt: int | None,
                        h_first: Any, c_first: Any) -> tuple[Any, Any]:
        """The backward loop, from the last step processed to the first: the recurrent
        part of BPTT, with the local derivatives ``L`` computed before (or, with fused
        kernels, in the step from the state it started from: ``h_first``, ``c_first``
        for the first step processed)."""
        xp, S = self.xp, D.S
        lstm = D.cell.HAS_CELL_STATE
        dxp, dhp = D.dxp, D.dhp
        dhp_rows = time_major(dhp)  # (T, B, G·H): a step's gradient is one matrix
        for s in range(len(order) - 1, -1, -1):
            self.checkpoint(s)
            t = order[s]
            dh = D.dh[t]
            xp.add(dH[t], dh_carry, out=dh)
            dxp_t = dxp[:, t]
            dhp_t = dxp_t if dhp is dxp else dhp[:, t]
            if s > 0:  # the state step t started from
                h_prev, c_prev = S["h"][order[s - 1]], S["c"][order[s - 1]] if lstm else None
            else:
                h_prev, c_prev = h_first, c_first if lstm else None
            direct, dc_prev = D.cell.backward(xp, t, dh, dc_carry, L, D.P, dxp_t, dhp_t,
                                              D.dc[t] if lstm else None, h_prev, c_prev)
            if s > 0 and tbptt and s % tbptt == 0:
                dh_carry[...] = 0  # truncation: h_{s-1} is a constant here
                dc_carry = zeros
                continue
            if W_hh is None:  # no W_hh: the direct path is the whole dh_{t-1}
                dh_carry[...] = direct
                continue
            xp.matmul(dhp_rows[t], W_hh, out=dh_carry)  # dh_{t-1} = Σ_gates dhp_g · W_hh,g
            if direct is not None:
                dh_carry += direct
            if lstm:
                dc_carry = dc_prev
        return dh_carry, dc_carry

    def _dir_param_grads(self, D: _Dir, h_first: Any, c_first: Any,
                         grads: dict | None) -> None:
        """Parameter gradients of one direction: one product per weight over all timesteps
        (nothing when ``grads`` is None)."""
        if grads is None:
            return
        xp, dt, X = self.xp, self.backend.dtype, D.X
        T, H = X.shape[0], D.H
        sfx = f"_l{D.k}{D.suffix}"
        dxp, dhp = D.dxp, D.dhp
        starts = D.prev_rows(slice(0, T), h_first, c_first)  # h_{t-1}, c_{t-1} of every step
        grads["weight_ih" + sfx] = outer_sum(xp, dxp, X)
        grads["bias_ih" + sfx] = column_sum(dxp)
        if not D.cell.HIDDEN_WEIGHTS:  # minGRU/minLSTM: no W_hh, no b_hh
            return
        dW_hh = xp.zeros((dhp.shape[0] * H, H), dtype=dt)
        for rows, h_prev, _ in starts:
            dW_hh += outer_sum(xp, dhp[:, rows], h_prev)
        grads["weight_hh" + sfx] = dW_hh
        # b_hh enters beside b_ih, so it has the same gradient, except GRU's b_hn.
        grads["bias_hh" + sfx] = (grads["bias_ih" + sfx].copy() if dhp is dxp
                                  else column_sum(dhp))
        if "peep" in D.P:  # p_i and p_f see c_{t-1}, p_o sees c_t
            dpeep = xp.zeros((3, H), dtype=dt)
            for rows, _, c_prev in starts:
                dpeep[0] += (dxp[0, rows] * c_prev).sum(axis=(0, 1))
                dpeep[1] += (dxp[1, rows] * c_prev).sum(axis=(0, 1))
            dpeep[2] = (dxp[3] * D.S["c"]).sum(axis=(0, 1))
            grads["weight_peep" + sfx] = dpeep

    def _run_recurrent(self, x: Any, y: Any, tbptt: int | None, need_backward: bool,
                       frozen: Trace | None, d_output: Any = None,
                       initial: Mapping[str, Any] | None = None,
                       loss_scale: float = 1.0, input_grad: bool = False,
                       param_grads: bool = True) -> Trace:
        xp, p, m = self.xp, self.params, self.model
        T, B, _ = x.shape
        layers = self._dirs()
        for row in layers:
            for D in row:
                if initial and D.key in initial:
                    h0, c0 = initial[D.key]
                    D.h0 = self.backend.asarray(h0)
                    D.c0 = None if c0 is None else self.backend.asarray(c0)
        inp = x
        for row in layers:
            for D in row:
                self._forward_dir(D, inp, tbptt, frozen)
            hs = [D.S["h"] for D in row]
            inp = hs[0] if len(hs) == 1 else xp.concatenate(hs, axis=-1)
        top = layers[-1]
        W, b = p["head.weight"], p["head.bias"]
        if m.pattern == "many_to_one":
            # PyTorch's h_n: the forward state at T−1 beside the reverse state at 0.
            final = [D.S["h"][0 if D.reverse else T - 1] for D in top]
            feat = final[0] if len(final) == 1 else xp.concatenate(final, axis=-1)
        else:
            feat = inp
        out = feat @ W.T + b
        trace = Trace(m, self.backend, out, layers_of(layers))
        d_out = self._loss_gradient(trace, y, d_output, loss_scale)
        if d_out is None or not need_backward:
            return trace
        grads: dict[str, Any] = {}
        if param_grads:
            d_rows = d_out.reshape(-1, m.output_size)
            grads["head.weight"] = d_rows.T @ feat.reshape(-1, feat.shape[-1])
            grads["head.bias"] = d_rows.sum(axis=0)
        # One output: an outer product, which NumPy's matmul takes 3x longer for.
        d_feat = d_out * W[0] if m.output_size == 1 else d_out @ W
        if m.pattern == "many_to_one":
            d_inp = self.mem.zeros((T, B, feat.shape[-1]), self.backend.dtype)
            lo = 0
            for D in top:
                d_inp[0 if D.reverse else T - 1, :, lo:lo + D.H] = d_feat[:, lo:lo + D.H]
                lo += D.H
        else:
            d_inp = d_feat
        for row in reversed(layers):
            d_below = None
            lo = 0
            want_dx = input_grad or row[0].k > 0  # the layer below needs it; x only if asked
            for D in row:
                dx = self._backward_dir(D, d_inp[..., lo:lo + D.H], tbptt,
                                        grads if param_grads else None, want_dx)
                lo += D.H
                if dx is not None:
                    d_below = dx if d_below is None else d_below + dx
            d_inp = d_below
        trace.grads = grads
        trace.dx = d_inp
        trace.layers = layers_of(layers, with_grads=True)
        trace.dh0 = {D.key: D.dh0 for row in layers for D in row}
        trace.dc0 = {D.key: D.dc0 for row in layers for D in row if D.dc0 is not None}
        return trace

    # ------------------------------------------------------------------ output recurrence

    def _run_feedback(self, x: Any, y: Any, tbptt: int | None, teacher_mask: Any,
                      need_backward: bool, frozen: Trace | None, d_output: Any = None,
                      loss_scale: float = 1.0, input_grad: bool = False,
                      param_grads: bool = True) -> Trace:
        xp, p, m, dt = self.xp, self.params, self.model, self.backend.dtype
        T, B, _ = x.shape
        O = m.output_size
        classes = m.loss == "cross_entropy"
        mask = (np.ones(T, dtype=bool) if teacher_mask is None
                else np.asarray(self.backend.to_numpy(xp.asarray(teacher_mask)), dtype=bool))
        if mask.shape != (T,):
            raise DataError(f"teacher_mask: expected shape ({T},), got {mask.shape}")
        if y is None and mask[1:].any():
            raise DataError("target: teacher forcing feeds the target, so a target is needed")
        target_feed = None
        if y is not None:
            target_feed = xp.eye(O, dtype=dt)[y] if classes else y
        layers = [row[0] for row in self._dirs()]
        W_ih4 = [gate_major(p[f"weight_ih_l{D.k}"], D.cell.BLOCKS) for D in layers]
        b_ih = [p[f"bias_ih_l{D.k}"].reshape(D.cell.BLOCKS, 1, D.H) for D in layers]
        W_oh4 = gate_major(p["weight_oh_l0"], layers[0].cell.BLOCKS)  # (G, H, O)
        for D in layers:
            D.S = D.cell.alloc(self.mem, T, B, D.H, dt)
        feed = xp.zeros((T, B, O), dtype=dt)  # y'_{t-1}, the input fed back at step t
        out = xp.empty((T, B, O), dtype=dt)
        fz = frozen.feed if frozen is not None and tbptt else None
        step_flops = 2.0 * B * max(D.H * D.cell.BLOCKS * D.H for D in layers)
        with self.backend.step_loop(step_flops):
            self._feedback_forward(layers, x, mask, target_feed, fz, tbptt, feed, out,
                                   W_ih4, b_ih, W_oh4, classes)
        trace = Trace(m, self.backend, out, layers_of([[D] for D in layers]))
        trace.feed = feed
        d_out = self._loss_gradient(trace, y, d_output, loss_scale)
        if d_out is None or not need_backward:
            return trace
        for D in layers:
            self._grad_buffers(D, T, B)
        with self.backend.step_loop(step_flops):
            self._feedback_backward(layers, out, d_out, mask, tbptt, classes)
        grads: dict[str, Any] = {}
        top_h = layers[-1].S["h"]
        if param_grads:
            grads["head.weight"] = d_out.reshape(-1, O).T @ top_h.reshape(-1, top_h.shape[-1])
            grads["head.bias"] = d_out.reshape(-1, O).sum(axis=0)
        for j, D in enumerate(layers if param_grads else ()):
            H = D.H
            inp = x if j == 0 else layers[j - 1].S["h"]
            grads[f"weight_ih_l{D.k}"] = outer_sum(xp, D.dxp, inp)
            grads[f"bias_ih_l{D.k}"] = column_sum(D.dxp)
            if j == 0:
                grads["weight_oh_l0"] = outer_sum(xp, D.dhp, feed)
            if "peep" in D.P:  # c_{t-1} = 0 here, so only p_o receives a gradient
                dpeep = xp.zeros((3, H), dtype=dt)
                dpeep[2] = (D.dxp[3] * D.S["c"]).sum(axis=(0, 1))
                grads[f"weight_peep_l{D.k}"] = dpeep
        if input_grad:
            trace.dx = back_project(xp, layers[0].dxp, p["weight_ih_l0"],
                                    self.mem.empty(x.shape, dt))
        trace.grads = grads
        trace.layers = layers_of([[D] for D in layers], with_grads=True)
        return trace

    def _feedback_forward(self, layers: list[_Dir], x: Any, mask: np.ndarray, target_feed: Any,
                          fz: Any, tbptt: int | None, feed: Any, out: Any, W_ih4: list,
                          b_ih: list, W_oh4: Any, classes: bool) -> None:
        """The output-recurrence forward loop: time outside, layers inside."""
        xp, p, dt = self.xp, self.params, self.backend.dtype
        T, B, _ = x.shape
        W, b = p["head.weight"], p["head.bias"]
        G0 = layers[0].cell.BLOCKS
        xproj0 = project(xp, x, p["weight_ih_l0"], G0, self.mem.empty((G0, T, B, layers[0].H), dt),
                         b_ih[0][:, None])
        W_ihT = [xp.ascontiguousarray(w.transpose(0, 2, 1)) for w in W_ih4]  # (G, K, H)
        W_ohT = xp.ascontiguousarray(W_oh4.transpose(0, 2, 1))
        zeros = [xp.zeros((B, D.H), dtype=dt) for D in layers]
        hproj = [xp.empty((D.cell.BLOCKS, B, D.H), dtype=dt) for D in layers]
        for t in range(T):
            self.checkpoint(t)
            if t > 0:
                if mask[t]:
                    feed[t] = target_feed[t - 1]
                elif fz is not None and t % tbptt == 0:
                    feed[t] = fz[t]
                else:
                    feed[t] = softmax(xp, out[t - 1]) if classes else out[t - 1]
            for j, D in enumerate(layers):
                if j == 0:
                    xpj = xproj0[:, t]
                    xp.matmul(feed[t], W_ohT, out=hproj[0])
                else:
                    xpj = xp.matmul(layers[j - 1].S["h"][t], W_ihT[j])
                    xpj += b_ih[j]
                    hproj[j][...] = 0
                D.cell.forward(xp, D.S, t, xpj, hproj[j], zeros[j], zeros[j], D.P)
            out[t] = layers[-1].S["h"][t] @ W.T + b

    def _feedback_backward(self, layers: list[_Dir], out: Any, d_out: Any, mask: np.ndarray,
                           tbptt: int | None, classes: bool) -> None:
        """The output-recurrence backward loop; turns ``d_out`` into the total dL/do_t."""
        xp, dt, p = self.xp, self.backend.dtype, self.params
        T, B, O = out.shape
        W = p["head.weight"]
        W_ih = [p[f"weight_ih_l{D.k}"] for D in layers]  # (G·H, K)
        d_rows = [time_major(D.dxp) for D in layers]  # (T, B, G·H)
        d_fed = time_major(layers[0].dhp)
        zeros = [xp.zeros((B, D.H), dtype=dt) for D in layers]
        # No hidden recurrence: every step starts from zero states.
        L = []
        for j, D in enumerate(layers):
            L.append(D.cell.factor_arrays(self.mem, D.S, D.P, D.dxp, D.dhp, D.dc))
            start = xp.broadcast_to(zeros[j], (T, B, D.H))
            D.cell.local(xp, D.S, slice(0, T), start, start, D.P, L[j])
        d_feed = xp.zeros((B, O), dtype=dt)  # dL/d(feed[t+1]), from the step after
        for t in range(T - 1, -1, -1):
            self.checkpoint(t)
            d_o = d_out[t]  # becomes the total dL/do_t, loss and feedback paths
            fed_back = t + 1 < T and not mask[t + 1] and not (tbptt and (t + 1) % tbptt == 0)
            if fed_back:  # out[t] was fed to step t+1: add that path's gradient
                if classes:
                    sm = softmax(xp, out[t])
                    d_o += sm * (d_feed - (d_feed * sm).sum(axis=-1, keepdims=True))
                else:
                    d_o += d_feed
            d_h = d_o @ W
            for j in range(len(layers) - 1, -1, -1):
                D = layers[j]
                D.dh[t] = d_h
                dxp_t = D.dxp[:, t]
                dhp_t = dxp_t if D.dhp is D.dxp else D.dhp[:, t]
                D.cell.backward(xp, t, D.dh[t], zeros[j], L[j], D.P, dxp_t, dhp_t,
                                None if D.dc is None else D.dc[t], zeros[j], zeros[j])
                if j > 0:
                    d_h = d_rows[j][t] @ W_ih[j]
            xp.matmul(d_fed[t], p["weight_oh_l0"], out=d_feed)

def gate_major(W: Any, G: int) -> Any:
    """View a (G·H, K) weight as (G, H, K): one block of rows per gate."""
    return W.reshape(G, W.shape[0] // G, W.shape[1])


def project(xp: Any, X: Any, W: Any, G: int, out: Any, bias: Any = None,
            control: Control | None = None) -> Any:
    """X (T, B, D) times Wᵀ (W is (G·H, D)), plus ``bias`` (G, 1, 1, H), all timesteps at
    once, into gate-major ``out`` (G, T, B, H): one product per gate block, written where
    the steps read it.  With a ``control``, a large projection goes in about eight
    slices of time (each output element is the same), checking for cancellation
    between them."""
    T, B, D = X.shape
    H = W.shape[0] // G
    WT = gate_major(W, G).transpose(0, 2, 1)
    step = T if control is None or out.size < 2**22 else max(1, -(-T // 8))
    for t0 in range(0, T, step):
        if control is not None:
            control.check()
        t1 = min(T, t0 + step)
        part = out[:, t0:t1]
        if D == 1:  # an outer product: NumPy's matmul takes 2-3x longer for it
            xp.multiply(X[t0:t1].reshape(1, (t1 - t0) * B, 1), WT,
                        out=part.reshape(G, (t1 - t0) * B, H))
        else:
            xp.matmul(X[t0:t1].reshape(1, (t1 - t0) * B, D), WT,
                      out=part.reshape(G, (t1 - t0) * B, H))
        if bias is not None:
            part += bias
    return out


def grad_buffer(mem: Workspace, G: int, T: int, B: int, H: int, dtype: Any) -> Any:
    """Memory for dL/d(projection): time-major (T, B, G, H), so that a step's gradient is
    one (B, G·H) matrix for the product back through W_hh and all steps one (T·B, G·H)
    matrix for the weight gradients; returned as the gate-major (G, T, B, H) view the
    cells write through."""
    return mem.empty((T, B, G, H), dtype).transpose(2, 0, 1, 3)


def time_major(d: Any) -> Any:
    """The (T, B, G·H) memory behind a gate-major view (G, T, B, H) from grad_buffer (or
    from a slice of its time axis): no copy."""
    G, T, B, H = d.shape
    return d.transpose(1, 2, 0, 3).reshape(T, B, G * H)


def column_sum(d: Any) -> Any:
    """Σ over steps and samples of a gradient view (G, T, B, H) → (G·H,): a bias gradient."""
    G, T, B, H = d.shape
    return time_major(d).reshape(T * B, G * H).sum(axis=0)


def back_project(xp: Any, d: Any, W: Any, out: Any) -> Any:
    """dL/dX into ``out`` (T, B, D) from the gradient view d (G, T, B, H) through W
    (G·H, D): Σ_g d_g W_g, one product."""
    G, T, B, H = d.shape
    xp.matmul(time_major(d).reshape(T * B, G * H), W, out=out.reshape(T * B, W.shape[1]))
    return out


def outer_sum(xp: Any, d: Any, X: Any) -> Any:
    """Σ over steps and samples of d_g ⊗ x: the gradient view d (G, T, B, H) and X
    (T, B, K) → (G·H, K), one product."""
    G, T, B, H = d.shape
    return time_major(d).reshape(T * B, G * H).T @ X.reshape(T * B, -1)


def layers_of(rows: list[list[_Dir]], with_grads: bool = False) -> dict[str, LayerTrace]:
    """The per-layer arrays of a finished pass, keyed ``l{k}`` / ``l{k}_reverse``."""
    out = {}
    for row in rows:
        for D in row:
            gates = {}
            if D.cell.GATES:
                a = D.S["gates"]  # (G, T, B, H)
                gates = {g: a[n] for n, g in enumerate(D.cell.GATES)}
            out[D.key] = LayerTrace(h=D.S["h"], c=D.S.get("c"), gates=gates,
                                    dh=D.dh if with_grads else None,
                                    dc=D.dc if with_grads else None)
    return out


# Arrays one direction keeps per timestep and sample, in units of H, through a pass:
# its states — h | gates, h, c, tanh c | gates, h, hp_n — and dL/dh (and dL/dc).
_STORED = {"rnn": 1 + 1, "lstm": 7 + 2, "gru": 5 + 1,
           # gates, h, c, tanh c | z, h̃, h | f′, i′, h̃, raw f, i, h
           "cifg": 6 + 2, "mingru": 3 + 1, "minlstm": 6 + 1}


def estimate_trace_bytes(model: ModelConfig, T: int, B: int, dtype: str = "float32") -> int:
    """Bytes one forward + BPTT pass with full traces needs, before allocating anything.

    Counts what is alive at the peak, during the last direction's backward pass:
    every direction's states, gates and dL/dh, the gradient buffers of the
    direction at work and its dL/d(input), the inputs between layers, the head's
    output and gradient, and parameters with their gradients.
    Matches measured peaks (tracemalloc) within 25 %.
    """
    item = np.dtype(dtype).itemsize
    feedback = model.pattern == "output_recurrence"
    units = 0  # numbers per (timestep, sample)
    work = 0  # the largest set of gradient buffers one direction holds at once
    params = 0
    d_in = model.input_size
    for k, layer in enumerate(model.layers):
        H, cell = layer.hidden_size, layer.cell
        G = CELLS[cell].BLOCKS
        nd = 2 if layer.bidirectional else 1
        # dL/d(projections) — GRU keeps the recurrent one apart — and, with peepholes,
        # the LSTM's ∂c_t/∂c_{t-1} (without them it is the forget gate itself; the fused
        # steps need neither, so the estimate errs high there, by H of some 15 H).
        grad_buffers = G * H * (2 if cell == "gru" else 1) + (H if layer.peephole else 0)
        if cell in INPUT_ONLY and not feedback and time_scan.worth_scanning(T, B, H):
            # the scan's coefficients of the backward recurrence (where the compiled
            # time loop runs instead, the estimate errs high by them)
            grad_buffers += H
        if feedback:  # every layer keeps its gradient buffers to the end
            units += nd * (_STORED[cell] * H + grad_buffers)
        else:  # released after each direction: gradient buffers and dL/d(input)
            units += nd * _STORED[cell] * H
            work = max(work, grad_buffers + d_in)
        if k > 0 and model.layers[k - 1].bidirectional:
            units += d_in  # the concatenated input
        hh = 0 if cell in INPUT_ONLY else H + 1  # W_hh and b_hh (minGRU/minLSTM: none)
        params += nd * (G * H * (d_in + hh + 1) + 3 * H) * 2
        d_in = nd * H
    units += work + 2 * model.output_size  # the output and its gradient
    if feedback:
        units += 2 * model.output_size  # the fed-back values (the head's gradient is per step)
    else:
        units += d_in  # the head's dL/d(features), all steps at once
    params += (d_in + 1) * model.output_size * 2
    return int((units * T * B + params) * item)


def check_memory(model: ModelConfig, T: int, B: int, dtype: str = "float32",
                 fraction: float = 0.8) -> int:
    """Raise MemoryLimitError when a pass would need more than ``fraction`` of free memory."""
    need = estimate_trace_bytes(model, T, B, dtype)
    have = available_memory()
    if need > fraction * have:
        raise MemoryLimitError(
            f"this run needs about {format_bytes(need)} (T={T}, batch={B}); the limit is "
            f"{format_bytes(fraction * have)}, {100 * fraction:.0f} % of the "
            f"{format_bytes(have)} of memory free now; use a smaller hidden size, sequence "
            "length or batch")
    return need


# Bytes a parameter takes while weights are drawn and used: the float64 draw, the
# float64 copy a session keeps, and a network's own copy (float64 at most).
PARAM_BYTES = 3 * 8


def check_param_memory(model: ModelConfig, fraction: float = 0.8) -> int:
    """Raise MemoryLimitError before the weights of ``model`` are drawn when they alone
    would need more than ``fraction`` of the free memory."""
    from .memory import param_count

    need = PARAM_BYTES * param_count(model)
    have = available_memory()
    if need > fraction * have:
        raise MemoryLimitError(
            f"this model has {param_count(model):,} parameters: drawing and using them "
            f"needs about {format_bytes(need)}; the limit is {format_bytes(fraction * have)}, "
            f"{100 * fraction:.0f} % of the {format_bytes(have)} free now; use a smaller "
            "hidden size or fewer layers")
    return need


__all__ = ["Network", "check_memory", "check_param_memory", "estimate_trace_bytes"]
