"""The Qt-free Lab (core.lab): undoable edits that never lose trained weights, the
weights policy of each edit, documents, training and probing without a window.

Small models throughout; the one lesson that trains for real (150 steps of
``sequence_to_one``) takes about a second and a half.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from core.experiment import FORMAT, VERSION, experiment_from_dict, load_experiment_config
from core.init import init_params
from core.jobs import Cancelled, Control
from core.lab import Lab
from core.layout import param_family
from core.lessons import load_lesson
from core.training.session import FINISHED, IDLE, PAUSED

ROOT = Path(__file__).resolve().parents[2]
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph")


def listen(signal) -> list:
    """Every emission of ``signal``: its one argument, a tuple of several, or None."""
    seen: list = []

    def record(*args):
        seen.append(args[0] if len(args) == 1 else (args or None))

    signal.connect(record)
    return seen


def fast_lab(cell: str = "lstm", hidden: int = 8, seq_len: int = 12, *,
             bidirectional: bool = False, peephole: bool = False, layers: int = 1) -> Lab:
    """The sequence_to_one lesson, shrunk: no probes or evaluations while training."""
    exp = load_lesson("sequence_to_one")
    exp.model.layers = [dataclasses.replace(exp.model.layers[0], cell=cell, hidden_size=hidden,
                                            bidirectional=bidirectional, peephole=peephole)
                        for _ in range(layers)]
    exp.task.seq_len = seq_len
    exp.task.batch_size = 8
    exp.training.trace_every = 0
    exp.training.eval_every = 0
    return Lab(exp)


def frozen(params) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in params.items()}


def assert_same_arrays(params, reference: dict[str, np.ndarray]) -> None:
    assert list(params) == list(reference)
    for k, v in reference.items():
        assert np.array_equal(params[k], v), k


# --------------------------------------------------------------------------- no Qt


def test_the_lab_runs_without_importing_qt():
    code = (
        "import sys\n"
        "import core.lab, core.jobs, core.document, core.training.session\n"
        "from core.lab import Lab\n"
        "lab = Lab.from_preset('sequence_to_one')\n"
        "lab.probe()\n"
        "lab.train(2)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r})\n"
        "print('QT-MODULES:' + ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("QT-MODULES:")]
    assert lines == ["QT-MODULES:"], out.stdout


def test_the_qt_check_could_see_qt():
    """The import check above is only meaningful where Qt is installed."""
    if importlib.util.find_spec("PySide6") is None:
        pytest.skip("PySide6 is not installed here")
    out = subprocess.run([sys.executable, "-c", "import sys, PySide6; "
                          "print('PySide6' in sys.modules)"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "True"


# --------------------------------------------------------------------------- the acceptance case


def test_train_then_each_knob_edit_and_undo_gives_back_the_trained_weights_bit_for_bit():
    """Lab.from_preset('sequence_to_one'), train 150 steps, then each of {recurrent
    scale 1.000→1.003, seed, hidden size} edit + undo gives back the same weights bit
    for bit (the very arrays) and the same history length; redo + undo too."""
    lab = Lab.from_preset("sequence_to_one")
    assert lab.experiment.init.scales.recurrent == 1.0
    rest = lab.train(150)
    assert rest is not None and rest.state == FINISHED and rest.error == ""
    assert len(lab.history) == 150
    assert lab.trained

    trained, history, opt_state = lab.params, lab.history, lab.optimizer_state
    values = frozen(trained)
    version = lab.version
    edits = [
        ("recurrent scale", lambda: lab.set_scale("recurrent", 1.003)),
        ("seed", lambda: lab.set_init(seed=lab.experiment.init.seed + 1)),
        ("hidden size", lambda: lab.update_layer(0, hidden_size=16)),
    ]

    def assert_back(what: str) -> None:
        assert lab.version is version, what
        assert lab.params is trained, what
        for k, v in trained.items():
            assert lab.params[k] is v, (what, k)
        assert_same_arrays(lab.params, values)
        assert len(lab.history) == 150, what
        assert lab.history is history, what
        assert lab.optimizer_state is opt_state, what
        assert lab.experiment.init.scales.recurrent == 1.0
        assert lab.experiment.init.seed == 0
        assert lab.experiment.model.layers[0].hidden_size == 32

    for what, edit in edits:
        assert edit(), (what, lab.last_error)
        edited = lab.params
        assert edited is not trained
        assert lab.undo(), what
        assert_back(what)
        assert lab.redo(), what
        assert lab.params is edited, what
        assert lab.undo(), what
        assert_back(what + " after redo")
    assert lab.undo_text == "Train 150 steps"
    assert not lab.can_redo or lab.redo_text  # a redo entry, if any, has its text


def test_a_user_trains_nudges_a_knob_and_undoes_with_notices_saying_what_happened():
    lab = Lab.from_preset("sequence_to_one")
    lab.train(150)
    trained = lab.params
    values = frozen(trained)
    notices = listen(lab.notice)
    errors = listen(lab.error)

    # a scale knob keeps the trained weights, rescaled
    assert lab.set_scale("recurrent", 1.003)
    assert lab.undo_text == "Recurrent scale 1.003"
    assert len(notices) == 1
    text = notices[-1]
    assert "kept" in text.lower() and "recurrent" in text and "1.003" in text
    assert len(lab.history) == 150  # the history goes with the kept weights
    for k, v in lab.params.items():
        if param_family(k) == "recurrent":
            assert np.array_equal(v, values[k] * 1.003), k
        else:
            assert v is trained[k], k
    assert lab.undo()
    assert lab.params is trained

    # a new seed draws fresh weights, and says the trained ones are one undo away
    assert lab.set_init(seed=7)
    assert len(notices) == 2
    text = notices[-1]
    assert "afresh" in text and "seed 7" in text and "150 steps" in text and "undo" in text
    assert len(lab.history) == 0
    assert_same_arrays(lab.params, init_params(lab.experiment.model, lab.experiment.init))
    assert lab.undo()
    assert lab.params is trained and len(lab.history) == 150

    # a new architecture draws fresh weights too
    assert lab.update_layer(0, hidden_size=16)
    assert len(notices) == 3
    text = notices[-1]
    assert "New model" in text and "afresh" in text and "150 steps" in text
    assert lab.params["weight_hh_l0"].shape == (64, 16)
    assert lab.undo()
    assert lab.params is trained
    assert_same_arrays(lab.params, values)
    assert errors == []


# --------------------------------------------------------------------------- weights policy


@pytest.mark.parametrize("family", ["input", "recurrent", "output"])
def test_a_scale_edit_on_trained_weights_rescales_exactly_its_family(family):
    lab = fast_lab()
    lab.train(3)
    before = lab.params
    old = getattr(lab.experiment.init.scales, family)
    assert lab.set_scale(family, 2 * old)
    after = lab.params
    assert set(after) == set(before)
    changed = [k for k in before if param_family(k) == family]
    assert changed  # the family is not empty
    for k, v in before.items():
        if param_family(k) == family:
            assert np.array_equal(after[k], 2 * v), k
        else:
            assert after[k] is v, k
    assert len(lab.history) == 3
    assert lab.optimizer_state is not None


def test_a_recurrent_scale_edit_rescales_trained_peepholes_too():
    lab = fast_lab(peephole=True)
    lab.train(3)
    before = lab.params
    assert "weight_peep_l0" in before
    assert lab.set_scale("recurrent", 2.0)
    for k, v in before.items():
        if param_family(k) == "recurrent":
            assert np.array_equal(lab.params[k], 2 * v), k


@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize(("family", "value"), [("input", 0.5), ("recurrent", 1.7),
                                                ("output", 3.0)])
def test_a_scale_edit_on_seed_weights_is_a_fresh_draw(family, value, peephole):
    lab = fast_lab(peephole=peephole)
    assert not lab.trained
    notices = listen(lab.notice)
    assert lab.set_scale(family, value)
    fresh = init_params(lab.experiment.model, lab.experiment.init)
    assert getattr(lab.experiment.init.scales, family) == value
    assert_same_arrays(lab.params, fresh)
    assert notices == []  # nothing trained was lost, so nothing to say
    assert not lab.trained


def test_an_init_edit_on_seed_weights_is_a_fresh_draw():
    lab = fast_lab()
    assert lab.set_init(forget_bias=2.5)
    assert_same_arrays(lab.params, init_params(lab.experiment.model, lab.experiment.init))
    assert lab.set_init(scheme="orthogonal")
    assert_same_arrays(lab.params, init_params(lab.experiment.model, lab.experiment.init))


@pytest.mark.parametrize(("bidirectional", "layers"), [(False, 1), (True, 2)])
def test_a_forget_bias_edit_on_a_trained_lstm_moves_only_the_forget_rows_of_bias_ih(
        bidirectional, layers):
    lab = fast_lab(hidden=6, bidirectional=bidirectional, layers=layers)
    lab.train(2)
    before = lab.params
    old = lab.experiment.init.forget_bias
    assert old == 1.0
    notices = listen(lab.notice)
    assert lab.set_init(forget_bias=3.0)
    assert "forget" in notices[-1] and "+2" in notices[-1]
    H = 6
    shifted = [k for k in before if k.startswith("bias_ih_l")]
    assert len(shifted) == layers * (2 if bidirectional else 1)
    for k, v in before.items():
        if k in shifted:
            expected = v.copy()
            expected[H:2 * H] += 2.0
            assert np.array_equal(lab.params[k], expected), k
            assert np.array_equal(lab.params[k][:H], v[:H])
            assert np.array_equal(lab.params[k][2 * H:], v[2 * H:])
            assert lab.params[k] is not v and np.array_equal(before[k], v)  # not in place
        else:
            assert lab.params[k] is v, k
    assert len(lab.history) == 2


def test_a_forget_bias_edit_on_a_trained_gru_keeps_every_weight():
    lab = fast_lab(cell="gru")
    lab.train(2)
    before = lab.params
    assert lab.set_init(forget_bias=2.0)
    for k, v in before.items():
        assert lab.params[k] is v, k


def test_settings_edits_keep_trained_weights_and_history():
    lab = fast_lab()
    lab.train(3)
    before, history = lab.params, lab.history
    notices = listen(lab.notice)
    assert lab.set_training(lr=0.001)
    assert lab.set_clip(max_norm=0.5)
    assert lab.set_task(seq_len=9)
    assert lab.set_text(title="renamed")
    assert lab.params is before and lab.history is history
    assert notices == []


# --------------------------------------------------------------------------- refused edits


@pytest.mark.parametrize(("cell", "edit", "field"), [
    ("lstm", lambda lab: lab.set_training(teacher_forcing=1.5), "teacher_forcing"),
    ("gru", lambda lab: lab.update_layer(0, peephole=True), "peephole"),
    ("lstm", lambda lab: lab.update_layer(0, hidden_size=0), "hidden_size"),
    ("lstm", lambda lab: lab.set_training(lr=-1.0), "lr"),
    ("lstm", lambda lab: lab.set_scale("sideways", 2.0), "scales"),
])
def test_a_refused_edit_reports_the_field_and_changes_nothing(cell, edit, field):
    lab = fast_lab(cell=cell)
    assert lab.set_training(steps=40)  # one entry to compare the undo stack with
    version, exp, params = lab.version, lab.experiment, lab.params
    errors = listen(lab.error)
    changed = listen(lab.params_changed)
    undo = listen(lab.undo_changed)
    assert edit(lab) is False
    assert len(errors) == 1 and field in errors[0], errors
    assert lab.last_error == errors[0]
    assert lab.version is version and lab.experiment is exp and lab.params is params
    assert changed == [] and undo == []
    assert lab.undo_text == "Training: steps 40" and not lab.can_redo
    assert lab.undo() and not lab.can_undo  # only the one entry was there


# --------------------------------------------------------------------------- undo and redo


def test_undo_redo_texts_and_a_new_edit_clears_redo():
    lab = fast_lab()
    assert not lab.can_undo and not lab.can_redo
    assert lab.undo_text == lab.redo_text == ""
    assert lab.undo() is False and lab.redo() is False
    undo_events = listen(lab.undo_changed)

    assert lab.set_training(lr=0.01)
    assert lab.set_scale("input", 0.5)
    assert lab.can_undo and not lab.can_redo
    assert lab.undo_text == "Input scale 0.5"
    assert lab.undo()
    assert lab.undo_text == "Training: lr 0.01"
    assert lab.redo_text == "Input scale 0.5" and lab.can_redo
    assert lab.experiment.init.scales.input == 1.0
    assert lab.redo()
    assert lab.experiment.init.scales.input == 0.5
    assert lab.undo()
    assert lab.set_training(steps=10)  # a new edit: the undone one is gone for good
    assert not lab.can_redo and lab.redo_text == ""
    assert lab.redo() is False
    assert lab.undo_text == "Training: steps 10"
    assert lab.undo() and lab.undo()
    assert not lab.can_undo
    assert lab.experiment.training.lr == 0.02 and lab.experiment.training.steps == 1000
    assert len(undo_events) == 8  # every move of the stack, none for the refused redo


def test_the_undo_history_forgets_its_oldest_steps_past_its_step_and_byte_limits():
    """A long session keeps a bounded history: at most ``undo_steps`` steps, and no
    more arrays beyond the current version's than ``undo_bytes``; the newest steps
    stay, and undo walks back exactly through them."""
    lab = fast_lab()
    lab.merge_s = 0.0  # every edit its own step
    lab.undo_steps = 5
    for i in range(8):
        assert lab.set_training(lr=0.001 * (i + 1))  # settings: the weights are shared
    assert lab._undo_bytes() == 0
    texts = []
    while lab.undo():
        texts.append(lab.redo_text)
    assert texts == [f"Training: lr {0.001 * (i + 1):g}" for i in range(7, 2, -1)]
    assert lab.experiment.training.lr == pytest.approx(0.003)  # the oldest kept step's before

    lab = fast_lab()
    lab.merge_s = 0.0
    one = sum(a.nbytes for a in lab.params.values())  # every init edit draws new weights
    lab.undo_bytes = 3 * one
    for i in range(6):
        assert lab.set_init(seed=i + 1)
        assert lab._undo_bytes() <= 3 * one
    steps = 0
    while lab.undo():
        steps += 1
    assert steps == 3 and lab.experiment.init.seed == 3  # seeds 4, 5, 6 undone; 3 kept
    assert lab.redo() and lab.experiment.init.seed == 4
    lab.undo_bytes = 0
    assert lab.set_init(seed=99) and lab.can_undo  # the newest step always stays
    assert lab.undo() and lab.experiment.init.seed == 4 and not lab.can_undo


def test_an_edit_to_the_same_value_is_no_undo_entry():
    lab = fast_lab()
    assert lab.set_scale("recurrent", 1.0)
    assert lab.set_training(lr=lab.experiment.training.lr)
    assert not lab.can_undo and not lab.modified


def test_the_modified_mark_follows_undo_back_to_the_saved_version(tmp_path):
    lab = fast_lab()
    lab.train(2)
    marks = listen(lab.file_changed)
    path = tmp_path / "work.gradlab"
    assert lab.save(path)
    assert not lab.modified and lab.path == path
    assert lab.set_training(lr=0.005)
    assert lab.modified
    assert lab.undo()
    assert not lab.modified
    assert lab.redo()
    assert lab.modified
    assert lab.undo()
    assert lab.undo()  # past the save: before training
    assert lab.modified
    assert lab.redo()
    assert not lab.modified
    assert marks  # observers heard about it


def test_a_settings_only_save_of_a_trained_lab_stays_modified(tmp_path):
    lab = fast_lab()
    lab.train(2)
    notices = listen(lab.notice)
    path = tmp_path / "settings.json"
    assert lab.save(path)
    assert path.exists()
    assert lab.modified
    assert len(notices) == 1 and ".gradlab" in notices[0] and "settings.json" in notices[0]
    assert load_experiment_config(path).model == lab.experiment.model


def test_a_settings_only_save_of_an_untrained_lab_clears_the_mark(tmp_path):
    lab = fast_lab()
    assert lab.set_training(lr=0.003)
    assert lab.modified
    notices = listen(lab.notice)
    path = tmp_path / "settings.json"
    assert lab.save(path)
    assert not lab.modified and lab.path == path
    assert notices == []
    assert load_experiment_config(path).training.lr == 0.003


def test_save_without_a_name_is_refused():
    lab = fast_lab()
    errors = listen(lab.error)
    assert lab.save() is False
    assert errors and "file name" in errors[0]


# --------------------------------------------------------------------------- documents


def test_a_gradlab_round_trip_keeps_weights_history_optimizer_state_and_probe(tmp_path):
    exp = load_lesson("sequence_to_one")
    exp.model.layers[0].hidden_size = 8
    exp.task.seq_len = 12
    exp.task.batch_size = 8
    exp.training.trace_every = 0
    exp.training.eval_every = 4  # some rows with a validation loss, some without
    lab = Lab(exp)
    lab.train(10)
    path = tmp_path / "trained.gradlab"
    assert lab.save(path)

    other = Lab.open(path)
    assert other.path == path and not other.modified and other.trained
    assert other.experiment == lab.experiment
    assert_same_arrays(other.params, frozen(lab.params))
    assert len(other.history) == len(lab.history) == 10
    assert set(other.history.arrays()) == set(lab.history.arrays())
    assert other.history == lab.history
    assert other.optimizer_state is not None
    assert set(other.optimizer_state) == set(lab.optimizer_state)
    for k, v in lab.optimizer_state.items():
        assert np.array_equal(np.asarray(other.optimizer_state[k]), np.asarray(v)), k
    assert float(other.probe().arrays["loss"]) == float(lab.probe().arrays["loss"])

    # and both go on training the same way
    lab.train(3)
    other.train(3)
    assert_same_arrays(other.params, frozen(lab.params))


# --------------------------------------------------------------------------- training


def test_each_train_call_is_its_own_undo_entry():
    lab = fast_lab()
    lab.train(4)
    after_first = lab.params
    first_history = lab.history
    lab.train(3)
    assert len(lab.history) == 7
    assert lab.undo_text == "Train 3 steps"
    assert lab.undo()
    assert lab.params is after_first
    assert len(lab.history) == 4 and lab.history is first_history
    assert lab.undo_text == "Train 4 steps"


def test_a_paused_and_resumed_session_is_one_undo_entry():
    lab = fast_lab()
    start, start_history = lab.params, lab.history
    session = lab.new_session(10)
    states = listen(lab.training_state_changed)
    progress = listen(lab.training_progress)

    def record_and_pause_at_4(snap):
        lab.record([snap])
        if len(lab.history) == 4:
            session.pause()

    assert session.start()
    rest = session.drive(record_and_pause_at_4)
    lab.settle(rest)
    assert rest.state == PAUSED and lab.training_state == PAUSED
    assert len(lab.history) == 4
    assert lab.undo_text == "Train 4 steps"
    paused_at = lab.params

    assert session.start()
    rest = session.drive(lambda snap: lab.record([snap]))
    lab.settle(rest)
    assert rest.state == FINISHED
    assert len(lab.history) == 10
    assert list(lab.history.column("step")) == list(range(1, 11))
    assert lab.undo_text == "Train 10 steps"
    assert states[-2:] == [PAUSED, FINISHED]
    assert progress[-1] == (10, 10)

    # the same weights as an uninterrupted run of 10 steps
    straight = fast_lab()
    straight.train(10)
    assert_same_arrays(lab.params, frozen(straight.params))

    assert lab.undo()
    assert lab.params is start and lab.history is start_history
    assert not lab.can_undo
    assert lab.redo()
    assert len(lab.history) == 10 and lab.params is not paused_at


def test_train_with_cancel_stops_early_and_keeps_the_steps_done():
    lab = fast_lab()
    start = lab.params
    seen: list[int] = []
    progress = listen(lab.training_progress)
    rest = lab.train(50, cancel=lambda: len(seen) >= 5, on_snapshot=lambda s: seen.append(s.step))
    assert rest is not None and rest.state == PAUSED
    assert seen == [1, 2, 3, 4, 5]
    assert rest.steps == 5 and len(lab.history) == 5
    assert lab.undo_text == "Train 5 steps"
    assert lab.params is not start
    assert_same_arrays(lab.params, {k: np.asarray(v, dtype=np.float64)
                                    for k, v in rest.params.items()})
    assert progress == [(k, 50) for k in range(1, 6)]
    assert lab.trained


def test_on_snapshot_sees_every_step_and_the_history_records_them():
    lab = fast_lab()
    seen = []
    rest = lab.train(6, on_snapshot=seen.append)
    assert rest.state == FINISHED and rest.steps == 6
    assert [s.step for s in seen] == [1, 2, 3, 4, 5, 6]
    assert list(lab.history.column("loss")) == [s.loss for s in seen]
    assert seen[-1].done


def test_an_edit_after_a_paused_run_starts_the_next_run_from_the_new_version():
    lab = fast_lab()
    lab.train(20, cancel=lambda: len(lab.history) >= 2)
    assert lab.training_state == PAUSED
    assert lab.set_training(lr=0.001)
    assert lab.training_state == IDLE and lab.session is None
    rest = lab.train(2)
    assert rest.state == FINISHED
    assert len(lab.history) == 4


def test_a_training_error_is_reported_and_keeps_the_version():
    lab = fast_lab()
    before = lab.version
    errors = listen(lab.error)

    def broken(exp, params, **kwargs):
        raise DataError("target: 3 non-finite value(s) (NaN or infinity), the first at [0]")
        yield  # pragma: no cover

    session = lab.new_session(5, train_fn=broken)
    session.start()
    rest = session.drive(lambda snap: lab.record([snap]))
    lab.settle(rest)
    assert rest.state == IDLE
    assert errors == ["target: 3 non-finite value(s) (NaN or infinity), the first at [0]"]
    assert lab.version is before and not lab.can_undo


# --------------------------------------------------------------------------- probing


def test_probe_stops_soon_after_its_control_is_cancelled():
    lab = fast_lab(hidden=512, seq_len=400)
    assert lab.probe_seconds() > 5  # a probe that would run for a long while
    control = Control()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.perf_counter())
        control.cancel()

    timer = threading.Timer(0.2, cancel)
    timer.start()
    try:
        with pytest.raises(Cancelled):
            lab.probe(control)
        stopped = time.perf_counter()
    finally:
        timer.cancel()
    assert cancelled_at
    assert stopped - cancelled_at[0] < 2.0
    assert lab.result is None


def test_a_probe_of_an_older_version_is_not_published():
    lab = fast_lab()
    results = listen(lab.result_changed)
    job = lab.probe_job()
    result = job.run()
    assert lab.set_training(lr=0.001)
    assert lab.publish(job, result) is False
    assert lab.result is None and results == []

    fresh = lab.probe_job()
    out = fresh.run(Control())
    assert lab.publish(fresh, out) is True
    assert lab.result is out and results == [out]

    # undo gives back the very version the old job probed: its result fits again
    assert lab.undo()
    assert lab.publish(job, result) is True
    assert lab.result is result


def test_probe_publishes_its_result():
    lab = fast_lab()
    results = listen(lab.result_changed)
    out = lab.probe()
    assert lab.result is out and results == [out]
    assert np.isfinite(float(out.arrays["loss"]))


# --------------------------------------------------------------------------- the smallest experiment


def smallest_lab() -> Lab:
    try:
        from core.userdata import check_arrays  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"experiments without a task are not in this tree yet ({exc})")
    exp = experiment_from_dict({
        "format": FORMAT, "version": VERSION,
        "model": {"input_size": 2, "output_size": 1,
                  "layers": [{"cell": "lstm", "hidden_size": 4}]},
    })
    assert exp.task is None
    return Lab(exp)


def test_the_smallest_experiment_without_data_names_what_is_missing():
    lab = smallest_lab()
    with pytest.raises(DataError) as info:
        lab.probe()
    message = str(info.value)
    assert "task" in message and "input" in message and "target" in message
    assert lab.probe_seconds() == 0.0


def test_the_smallest_experiment_probes_and_trains_on_given_arrays():
    from core.training.loop import evaluate

    lab = smallest_lab()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3, 2)), rng.normal(size=(6, 3, 1))
    assert lab.set_data(x, y), lab.last_error
    assert lab.undo_text == "Use your data"
    result = lab.probe()
    loss = float(result.arrays["loss"])
    assert np.isfinite(loss)
    assert loss == pytest.approx(evaluate(lab.experiment, lab.params, data=(x, y)), rel=1e-6)

    rest = lab.train(3)
    assert rest.state == FINISHED and rest.error == ""
    assert len(lab.history) == 3

    # arrays that do not fit the model are refused and change nothing
    version = lab.version
    errors = listen(lab.error)
    assert lab.set_data(x[:, :, :1], y) is False
    assert errors and "input" in errors[0]
    assert lab.version is version

    # without the arrays, nothing to probe again
    assert lab.undo() and lab.undo()
    assert lab.data is None
    with pytest.raises(DataError):
        lab.probe()


# ----------------------------------------------------------------------------- a user's drags


def test_a_drag_of_one_knob_is_one_undo_step_and_separate_moves_are_not():
    lab = fast_lab()
    start = lab.params
    for value in (1.1, 1.2, 1.3):  # one drag: quick moves of the same knob
        assert lab.set_scale("recurrent", value)
    assert lab.set_scale("input", 0.5)  # another knob: its own step
    assert [c.text for c in lab._undo] == ["Recurrent scale 1.3", "Input scale 0.5"]
    assert lab.undo() and lab.undo() and not lab.can_undo
    assert lab.params is start
    lab.merge_s = 0.0
    assert lab.set_scale("recurrent", 1.1) and lab.set_scale("recurrent", 1.2)
    assert lab.undo() and lab.experiment.init.scales.recurrent == pytest.approx(1.1)
    assert lab.redo() and lab.set_scale("recurrent", 1.4)  # after a redo: no merging
    assert lab.undo() and lab.experiment.init.scales.recurrent == pytest.approx(1.2)


def test_training_in_float64_leaves_the_earlier_version_untouched():
    lab = fast_lab()
    assert lab.set_backend(dtype="float64")
    before = frozen(lab.params)
    lab.train(5)
    assert not np.array_equal(lab.params["weight_hh_l0"], before["weight_hh_l0"])
    assert lab.undo()  # the weights from before training, exactly: nothing trained in place
    assert all(np.array_equal(lab.params[k], v) for k, v in before.items())


def test_stored_weights_cannot_be_changed_in_place():
    lab = fast_lab()
    lab.train(2)
    with pytest.raises(ValueError, match="read-only"):
        lab.params["weight_hh_l0"][0, 0] = 1.0


def test_a_scale_raised_from_zero_draws_that_family_from_the_seed():
    lab = fast_lab()
    assert lab.set_scale("input", 0.0)
    lab.train(3)
    notes = listen(lab.notice)
    assert lab.set_scale("input", 2.0)
    exp = lab.experiment
    fresh = init_params(exp.model, exp.init)
    for name, value in lab.params.items():
        if param_family(name) == "input":
            np.testing.assert_array_equal(value, fresh[name])
    assert "drawn from the seed at scale 2" in notes[-1]


def test_a_task_of_the_same_sizes_keeps_trained_weights():
    from core.experiment import Experiment, LayerConfig, ModelConfig, TaskConfig

    exp = Experiment(model=ModelConfig(layers=[LayerConfig(cell="gru", hidden_size=6)]),
                     task=TaskConfig(name="sine", seq_len=20, batch_size=4))
    exp.training.trace_every = exp.training.eval_every = 0
    lab = Lab(exp)
    lab.train(3)
    trained = lab.params
    assert lab.set_task("mackey_glass")  # one input, one output, mse: the same model
    assert lab.experiment.model == exp.model
    assert lab.params is trained and len(lab.history) == 3
    assert lab.set_task("adding")  # two inputs: a new model, fresh weights
    assert lab.params is not trained and len(lab.history) == 0
    assert lab.undo() and lab.params is trained


def test_a_model_too_large_for_memory_is_refused_before_its_weights_are_drawn(monkeypatch):
    import core.network as network
    from core.errors import MemoryLimitError
    from core.experiment import LayerConfig

    lab = fast_lab()
    errors = listen(lab.error)
    monkeypatch.setattr(network, "available_memory", lambda: 1024**3)  # 1 GiB free
    before = lab.version
    assert not lab.update_layer(0, hidden_size=10_000)  # 4·10⁸ weights: 9 GiB to draw
    assert "parameters" in errors[-1] and "the limit is" in errors[-1]
    assert lab.version is before and not lab.can_redo
    assert lab.update_layer(0, hidden_size=64)  # a model that fits goes through
    exp = dataclasses.replace(lab.experiment, model=dataclasses.replace(
        lab.experiment.model, layers=[LayerConfig(cell="lstm", hidden_size=20_000)]))
    with pytest.raises(MemoryLimitError):
        Lab(exp)


def test_the_users_arrays_are_saved_in_the_document_and_come_back(tmp_path):
    exp = experiment_from_dict({"format": FORMAT, "version": VERSION,
                                "model": {"input_size": 3, "output_size": 2,
                                          "layers": [{"cell": "gru", "hidden_size": 4}]}})
    lab = Lab(exp)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 5, 3)), rng.normal(size=(7, 5, 2))
    assert lab.set_data(x, y)
    loss = float(lab.probe().arrays["loss"])
    notes = listen(lab.notice)
    assert lab.save(tmp_path / "settings.json") and lab.modified  # the arrays are left out
    assert "your data arrays" in notes[-1]
    assert lab.save(tmp_path / "mine.gradlab") and not lab.modified
    again = Lab.open(tmp_path / "mine.gradlab")
    np.testing.assert_array_equal(again.data[0], x)
    np.testing.assert_array_equal(again.data[1], y)
    assert float(again.probe().arrays["loss"]) == loss


def test_a_document_whose_arrays_do_not_fit_its_model_is_refused(tmp_path):
    from core.archive import save_archive

    exp = experiment_from_dict({"format": FORMAT, "version": VERSION,
                                "model": {"input_size": 3, "output_size": 2,
                                          "layers": [{"cell": "gru", "hidden_size": 4}]}})
    with pytest.raises(DataError, match=r"data\.safetensors.*input"):
        save_archive(tmp_path / "bad.gradlab", exp, None,
                     data=(np.zeros((7, 5, 4)), np.zeros((7, 5, 2))))
    with pytest.raises(DataError, match="non-finite"):
        save_archive(tmp_path / "bad.gradlab", exp, None,
                     data=(np.full((7, 5, 3), np.nan), np.zeros((7, 5, 2))))


def test_a_csv_too_short_for_any_window_says_how_many_values_it_needs(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("value\n1\n2\n3\n")
    lab = fast_lab(cell="rnn")
    errors = listen(lab.error)
    before = lab.version
    assert not lab.set_task("csv", path=str(path), column="value")
    assert "too few values: 3 found" in errors[-1] and "seq_len" not in errors[-1].split(":")[0]
    assert lab.version is before


def test_a_probe_hands_out_its_pass_before_the_analyses():
    """A control that takes early results gets the pass without the Jacobian products
    and the connectivity map (named in ``pending``), then the complete result shares
    its arrays; published in turn, the early one is shown but neither pinned nor
    taken for a result lacking the map."""
    lab = Lab.from_preset("peephole")
    early = []
    job = lab.probe_job()
    result = job.run(Control(on_early=early.append))
    assert len(early) == 1
    part = early[0]
    assert part.pending == ("jacobian", "connectivity") and result.pending == ()
    assert part.jacobian == {} and part.connectivity is None
    assert result.jacobian and result.connectivity is not None
    assert part.arrays is result.arrays and part.spectra is result.spectra
    assert 0 < part.elapsed_s <= result.elapsed_s

    shown = listen(lab.result_changed)
    assert lab.publish(job, part)
    assert lab.result is part and shown == [part]
    assert lab.pin() is None and "wait for the probe" in lab.last_error
    assert not lab.set_analyses(connectivity=True)  # the map is on its way: no new probe
    assert lab.publish(job, result)
    assert shown == [part, result] and lab.pin() is not None
    lab.end_early_result()  # nothing pending: nothing to end
    assert shown == [part, result]

    # Its probe cancelled, an early result is shown as final, without the analyses.
    assert lab.publish(job, part)
    lab.end_early_result()
    assert shown[-1].pending == () and shown[-1].jacobian == {} and lab.result is shown[-1]

    # For a pass that overflowed, nothing comes early: there are no analyses to wait for.
    from core.lab import probe_batch
    from core.probe import probe

    params = dict(lab.params)
    params["head.weight"] = np.full_like(params["head.weight"], 3e38)
    params["head.bias"] = np.full_like(params["head.bias"], 3e38)
    x, y = probe_batch(lab.experiment, None)
    bad = probe(lab.experiment, params, x, y, control=Control(on_early=early.append))
    assert bad.nonfinite and len(early) == 1


def test_analyses_a_window_leaves_out_and_asks_for_again():
    """``set_analyses(connectivity=False)`` (a hidden view) leaves the map out of later
    probes; asking for it again says whether the result shown lacks it."""
    lab = Lab.from_preset("peephole")
    assert lab.probe().connectivity is not None  # by default every analysis
    assert not lab.set_analyses(connectivity=False)
    lean = lab.probe()
    assert lean.connectivity is None and lean.jacobian is not None
    assert lab.set_analyses(connectivity=True)  # the result shown lacks it: probe again
    assert lab.probe().connectivity is not None
    assert not lab.set_analyses(connectivity=True)


def test_a_probe_that_left_out_the_map_asked_for_while_it_ran_is_followed_by_another():
    """The map's view comes into sight while a lean probe runs, before any result is
    shown: set_analyses cannot tell yet, so the host asks ``left_out`` when the lean
    result comes (a lesson that opens on the map showed "no map" until a nudge)."""
    lab = Lab.from_preset("teacher_forcing")
    lab.set_analyses(connectivity=False)
    lean = lab.probe_job()
    assert not lab.set_analyses(connectivity=True)  # nothing shown yet to compare
    assert lab.publish(lean, lean.run())
    assert lab.result.connectivity is None and lab.left_out(lean)
    full = lab.probe_job()
    assert lab.publish(full, full.run())
    assert lab.result.connectivity is not None and not lab.left_out(full)
    lab.set_analyses(connectivity=False)
    assert not lab.left_out(lab.probe_job())  # the map is not wanted
