"""The cells.  Each module holds one step's forward and, beside it, its backward.

Module interface (``xp`` is NumPy or CuPy, ``S`` the per-sequence storage from
``alloc``, ``P`` the step constants):

- ``NAME``, ``BLOCKS`` (gate blocks stacked in W_ih rows), ``GATES`` (trace names),
  ``HAS_CELL_STATE``, ``HIDDEN_WEIGHTS`` (False: no weight_hh / bias_hh; ``hp`` is
  None under hidden recurrence, ``backward``'s direct path is the whole dL/dh_{t-1},
  and ``keep_factor(xp, gates)`` gives the diagonal step Jacobian)
- ``alloc(mem, T, B, H, dtype) -> S``, where ``mem.empty(shape, dtype)`` allocates
  (the network's :class:`~core.workspace.Workspace`)
- ``forward(xp, S, t, xp_t, hp_t, h_prev, c_prev, P)``: fills ``S[...][t]``; the
  projections are gate-major, (BLOCKS, B, H)
- ``factor_arrays(mem, S, P, dxp, dhp, dc) -> L``: where the local derivatives go
- ``local(xp, S, times, h_prev, c_prev, P, L)``: the derivatives that need only the
  forward pass, for many timesteps at once (off the step loop)
- ``backward(xp, t, dh, dc_next, L, P, dxp, dhp, dc) -> (dh_direct, dc_prev)``: the
  recurrent part of one step back
"""

from __future__ import annotations

from types import ModuleType

from . import cifg, gru, lstm, mingru, minlstm, rnn

CELLS: dict[str, ModuleType] = {"rnn": rnn, "lstm": lstm, "gru": gru, "cifg": cifg,
                                "mingru": mingru, "minlstm": minlstm}
