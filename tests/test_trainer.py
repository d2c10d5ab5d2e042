"""The training loop on a tiny BTC and tiny synthetic HDF5 data: learning, LR schedule, resume."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from bucket_helpers import feature_bucket, teacher_bucket
from torch.utils.data import DataLoader

import mirkd.references as references
import mirkd.training.trainer as trainer
from mirkd.checkpoints import ModelBundle, load_checkpoint, read_checkpoint_state
from mirkd.errors import ConfigError
from mirkd.evaluation import METRICS
from mirkd.features import CQTParams
from mirkd.labels import ChordSegment
from mirkd.manifest import BucketFiles
from mirkd.model_configs import check_init_is_student
from mirkd.models.registry import build_model
from mirkd.references import ReferenceTrack
from mirkd.stages import job_settings
from mirkd.store import BucketFile, FrameGrid, TeacherOutput
from mirkd.training.consistency import NOISE, consistency_loss, second_view
from mirkd.training.datasets import (
    LabeledDataset,
    LabeledTrack,
    PseudoLabelDataset,
    WindowDataset,
)
from mirkd.training.losses import class_frame_counts, class_weights, focal_loss
from mirkd.training.sampling import block_shuffled
from mirkd.training.trainer import (
    TrainConfig,
    _EpochTotals,
    _load_optimizer,
    _poisoned,
    _Run,
    _train_step,
    amp_dtype,
    loss_for_batch,
    run_class_weights,
    scheduled_lr,
    train,
)
from mirkd.training.validation import AgreementTrack, frame_agreement, validation_wcsr
from mirkd.vocab import LARGE

from model_helpers import TINY_BTC, train_config

PARAMS = CQTParams()
CPU = torch.device("cpu")
TINY = {"timestep": 16, **TINY_BTC}
CLASSES = (LARGE.to_index("C"), LARGE.to_index("A:min"), LARGE.n_index)


def _track(n_frames, seed):
    """Features whose loud band encodes one of three chord classes; labels and probs too."""
    rng = np.random.default_rng(seed)
    which = np.repeat(rng.integers(0, 3, n_frames // 8 + 1), 8)[:n_frames]
    cqt = rng.normal(-6.0, 0.5, (n_frames, 144))
    for k in range(3):
        cqt[which == k, 40 * k : 40 * k + 30] += 4.0
    labels = np.array(CLASSES)[which]
    probs = np.full((n_frames, LARGE.size), 0.2 / (LARGE.size - 1), dtype=np.float32)
    probs[np.arange(n_frames), labels] = 0.8
    return cqt, labels.astype(np.int64), probs


@pytest.fixture()
def data(tmp_path):
    """Four tracks in one features + teacher bucket: {id: (features view, labels, probs)}."""
    raw = {f"t{i}": _track(64 + 16 * i, i) for i in range(4)}
    files = BucketFiles(
        feature_bucket(tmp_path / "features.h5", {k: v[0] for k, v in raw.items()}),
        teacher_bucket(
            tmp_path / "teacher.h5", {k: TeacherOutput.from_probs(v[2]) for k, v in raw.items()}
        ),
    )
    mapped = BucketFile(files.features)
    tracks = {k: (mapped.frames("cqt", k), v[1], v[2]) for k, v in raw.items()}
    return tracks, files


def _bundle(model, mean=-5.5, std=1.5):
    """`model` as the tiny BTC student of a step: LARGE vocabulary, normalised by mean/std."""
    return ModelBundle.student(model, "btc", TINY, mean, std, {"test": True})


def _agreement_track(tracks, track_id):
    return AgreementTrack(tracks[track_id][0], tracks[track_id][1])


def _reference_track(tracks, track_id, reference):
    n = len(tracks[track_id][1])
    grid = FrameGrid(PARAMS.frame_period, n, n * PARAMS.frame_period)
    return ReferenceTrack(track_id, tracks[track_id][0], grid, reference)


def _model(seed):
    torch.manual_seed(seed)
    return build_model("btc", TINY)


def test_scheduled_lr_warmup_then_cosine():
    config = train_config(epochs=10, warmup_epochs=2, lr=3e-4, warmup_start_lr=1e-4, min_lr=1e-6)
    assert scheduled_lr(0, 5, config) == pytest.approx(1e-4)
    assert scheduled_lr(5, 5, config) == pytest.approx(2e-4)
    assert scheduled_lr(10, 5, config) == pytest.approx(3e-4)
    assert scheduled_lr(30, 5, config) == pytest.approx(1e-6 + (3e-4 - 1e-6) / 2)
    assert scheduled_lr(50, 5, config) == pytest.approx(1e-6)


def test_stage1_training_lowers_loss_and_saves(tmp_path, data):
    tracks, files = data
    ids = sorted(tracks)
    ds = PseudoLabelDataset([files], seq_len=16, stride=16)
    val_tracks = [_agreement_track(tracks, t) for t in ids[:2]]
    bundle = _bundle(_model(0))
    config = train_config(  # one view: the loss halving is the focal loss's
        epochs=6,
        batch_size=8,
        lr=1e-2,
        warmup_epochs=1,
        warmup_start_lr=3e-3,
        patience=10,
        consistency=0.0,
    )
    history = train(
        bundle,
        ds,
        lambda b: frame_agreement(b, val_tracks, torch.device("cpu")),
        config,
        tmp_path / "best.pt",
        tmp_path / "last.pt",
        device=CPU,
        log=lambda s: None,
    )
    assert len(history) == 6
    assert history[-1].train_loss < 0.5 * history[0].train_loss
    assert max(h.val_score for h in history) > 0.9
    assert [h.epoch for h in history] == [1, 2, 3, 4, 5, 6]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.arch == "btc" and best.mean == pytest.approx(-5.5)
    assert best.provenance["step_dtype"] == "float32"  # auto: pinned to float32 (conftest)
    state = read_checkpoint_state(tmp_path / "last.pt")["training_state"]
    assert state["epoch"] == 6 and len(state["history"]) == 6


class _Constant(torch.nn.Module):
    """Predicts one class on every frame."""

    window = 16
    num_classes = LARGE.size

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape[:2], LARGE.size)
        logits[..., self.index] = 1.0
        return logits


def test_validation_scores_whole_tracks(data):
    tracks, _ = data
    cpu = torch.device("cpu")
    c_major = LARGE.to_index("C")
    labels = tracks["t1"][1]
    constant = _bundle(_Constant(c_major), 0.0, 1.0)
    agreement = frame_agreement(constant, [_agreement_track(tracks, "t1")], cpu)
    assert agreement == pytest.approx(float(np.mean(labels == c_major)))
    end = len(labels) * PARAMS.frame_period
    half = [ChordSegment(0.0, end / 2, "C:maj7"), ChordSegment(end / 2, end, "D:min")]
    wcsr = validation_wcsr(constant, [_reference_track(tracks, "t1", half)], cpu, metric="majmin")
    assert wcsr == pytest.approx(0.5)


def test_validation_mean7_is_the_mean_of_the_seven_from_one_scoring(data, monkeypatch):
    tracks, _ = data
    end = len(tracks["t1"][1]) * PARAMS.frame_period
    half = [ChordSegment(0.0, end / 2, "C:maj7"), ChordSegment(end / 2, end, "C:min")]
    val = [_reference_track(tracks, "t1", half)]
    calls = []
    scored = references.song_scores

    def counting(songs):
        calls.append(1)
        return scored(songs)

    monkeypatch.setattr(references, "song_scores", counting)
    model = _bundle(_Constant(LARGE.to_index("C")), 0.0, 1.0)
    mean7 = validation_wcsr(model, val, CPU, metric="mean7")
    assert len(calls) == 1
    seven = [validation_wcsr(model, val, CPU, metric=m) for m in METRICS]
    assert mean7 == pytest.approx(float(np.mean(seven)))
    assert len(set(seven)) > 1  # a mean of different values, not one metric


def test_schema_accepts_mean7_and_class_balance():
    config = train_config("stage2", val_metric="mean7", class_balance=0.5)
    assert config.val_metric == "mean7" and config.class_balance == 0.5
    assert train_config("baseline").class_balance == 0.0


def test_consistency_is_on_by_default_in_stage1_only():
    assert train_config("stage1").consistency == 1.0
    assert train_config("stage2").consistency == 0.0
    assert train_config("baseline").consistency == 0.0
    assert train_config("baseline").val_metric == "majmin"


class _Counted(torch.utils.data.Dataset):
    """A window dataset with the frame counts of its training targets."""

    def __init__(self, ds: WindowDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return self.ds[item]

    def batch(self, items) -> dict[str, torch.Tensor]:
        return self.ds.batch(items)

    def class_counts(self) -> np.ndarray:
        y = torch.cat([self.ds[i]["y"] for i in range(len(self.ds))])
        return class_frame_counts(y.numpy(), LARGE.size)


def test_class_balance_needs_class_counts(data):
    ds = _stage1_ds(*data)
    config = train_config(batch_size=4, class_balance=0.5)
    assert run_class_weights(ds, train_config(batch_size=4), LARGE.size, CPU) is None
    with pytest.raises(ConfigError, match="class_counts"):
        _Run.start(_bundle(_model(0)), config, CPU, ds)


def test_class_balance_weights_the_focal_loss_of_a_run(tmp_path, data):
    ds = _Counted(_stage1_ds(*data))
    config = train_config(batch_size=4, class_balance=0.5)
    run = _Run.start(_bundle(_model(0)), config, CPU, ds)
    expected = class_weights(ds.class_counts(), 0.5)
    assert torch.equal(run.class_weights, expected)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    logits = run.model(batch["x"].float())
    flat, y = logits.reshape(-1, LARGE.size), batch["y"].reshape(-1)
    got = loss_for_batch(logits, batch, config, run.class_weights)
    assert got.item() == pytest.approx(focal_loss(flat, y, 2.0, expected).item(), rel=1e-6)
    assert got.item() != pytest.approx(loss_for_batch(logits, batch, config).item(), rel=1e-6)
    logged = []
    history = _train_briefly(tmp_path, ds, _model(0), log=logged.append, class_balance=0.5)
    assert any(line.startswith("class balance 0.5: focal weights") for line in logged)
    assert all(math.isfinite(h.train_loss) for h in history)


def test_plateau_decay_and_early_stopping(tmp_path, data):
    _, files = data
    ds = PseudoLabelDataset([files], seq_len=16, stride=16)
    config = train_config(
        epochs=10,
        batch_size=8,
        lr=1e-3,
        schedule="plateau",
        patience=2,
        plateau_factor=0.5,
        min_lr=3e-4,
    )
    scores = iter([0.5, 0.4, 0.5, 0.1])
    history = train(
        _bundle(_model(0)),
        ds,
        lambda m: next(scores),
        config,
        tmp_path / "best.pt",
        tmp_path / "last.pt",
        device=CPU,
        log=lambda s: None,
    )
    assert [h.val_score for h in history] == [0.5, 0.4, 0.5]  # 2 non-improving -> stop
    assert [h.lr for h in history] == pytest.approx([1e-3, 5e-4, 3e-4])  # floor min_lr
    assert read_checkpoint_state(tmp_path / "best.pt")["epoch"] == 1
    again = train(
        _bundle(_model(0)),
        ds,
        lambda m: 1.0,
        config,
        tmp_path / "best.pt",
        tmp_path / "last.pt",
        device=CPU,
        log=lambda s: None,
    )
    # an early-stopped run is not continued but trained again from its first epoch
    assert [(h.epoch, h.val_score) for h in again] == [(1, 1.0), (2, 1.0), (3, 1.0)]


class _Killed(Exception):
    pass


def _stage2_run(tmp_path, data, out_dir, kill_at_epoch=None, model_seed=0, **settings):
    tracks, _ = data
    ids = sorted(tracks)
    ds = LabeledDataset(
        [LabeledTrack(t, tracks[t][0], tracks[t][1], tracks[t][2]) for t in ids],
        seq_len=16,
        stride=16,
        pitch_shift=(0, 1),
    )
    val = [
        _reference_track(
            tracks, t, [ChordSegment(0.0, len(tracks[t][1]) * PARAMS.frame_period, "C")]
        )
        for t in ids[:1]
    ]
    calls = []

    def validate(bundle):
        calls.append(1)
        if len(calls) == kill_at_epoch:
            raise _Killed
        return validation_wcsr(bundle, val, torch.device("cpu"), metric="root")

    config = train_config(
        "stage2",
        epochs=3,
        batch_size=8,
        lr=1e-3,
        schedule="plateau",
        patience=5,
        use_kd=True,
        selective_kd=True,
        kd_alpha=0.3,
        seed=7,
        **settings,
    )
    out = tmp_path / out_dir
    model = _model(model_seed)
    train(
        _bundle(model),
        ds,
        validate,
        config,
        out / "best.pt",
        out / "last.pt",
        device=CPU,
        log=lambda s: None,
    )
    return model


@pytest.mark.parametrize("consistency", [0.0, 1.0])
def test_resume_after_kill_gives_identical_weights(tmp_path, data, consistency):
    """Also with the two-view consistency loss: its random views replay after a resume."""
    reference = _stage2_run(tmp_path, data, "straight", consistency=consistency)
    with pytest.raises(_Killed):
        _stage2_run(tmp_path, data, "resumed", kill_at_epoch=3, consistency=consistency)
    state = read_checkpoint_state(tmp_path / "resumed" / "last.pt")["training_state"]
    assert state["epoch"] == 2
    resumed = _stage2_run(tmp_path, data, "resumed", model_seed=123, consistency=consistency)
    ref_state, res_state = reference.state_dict(), resumed.state_dict()
    assert ref_state.keys() == res_state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], res_state[key]), key
    history = read_checkpoint_state(tmp_path / "resumed" / "last.pt")["training_state"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(math.isfinite(h["train_loss"]) for h in history)


def _stage1_ds(tracks, files):
    return PseudoLabelDataset([files], seq_len=16, stride=16)


def _steps(ds, batches, config):
    """A fresh tiny model and fused AdamW after one `_train_step` per (batch, dropout seed);
    the totals."""
    run = _Run.start(_bundle(_model(0)), config, CPU, ds)
    run.model.train()
    totals = _EpochTotals.zeros(CPU)
    for batch, seed in batches:
        torch.manual_seed(seed)
        _train_step(run, batch, totals)
    return run, totals


def test_a_run_normalises_its_batches_as_before_through_the_bundle(data):
    """The trainer's batches: float32, the bundle's (x - mean) / std, padding frames 0; bit
    for bit the formula the trainer had before the bundle owned it."""
    ds = _stage1_ds(*data)
    run = _Run.start(_bundle(_model(0)), train_config(batch_size=4), CPU, ds)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    mask = batch["mask"].clone()
    mask[0, -3:] = False
    got = run.normalise(batch["x"], mask)
    assert got.dtype == torch.float32
    assert torch.equal(got, ((batch["x"].float() + 5.5) / 1.5) * mask.unsqueeze(-1))
    assert torch.equal(got[0, -3:], torch.zeros_like(got[0, -3:]))


def _assert_same_state(a, b):
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    state_a, state_b = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for i in state_a:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state_a[i][key], state_b[i][key]), (i, key)


def test_a_non_finite_loss_leaves_weights_and_optimiser_untouched(data):
    """Steps b1, NaN, b2 end exactly where b1, b2 do; the NaN step is counted, not averaged."""
    ds = _stage1_ds(*data)
    b1, b2 = list(DataLoader(ds, batch_size=4))[:2]
    bad = {**b1, "x": b1["x"].clone()}
    bad["x"][0, 3, 7] = math.nan
    config = train_config(batch_size=4, weight_decay=0.1)
    with_nan, totals_nan = _steps(ds, [(b1, 1), (bad, 3), (b2, 2)], config)
    without, totals = _steps(ds, [(b1, 1), (b2, 2)], config)
    _assert_same_state(with_nan, without)
    assert (totals_nan.n_skipped(), totals_nan.steps, totals.n_skipped()) == (1, 3, 0)
    assert totals_nan.mean_loss() == totals.mean_loss() > 0
    assert all(torch.isfinite(p).all() for p in with_nan.model.parameters())


def test_a_finite_step_is_the_plain_adamw_update(data):
    """The fused, flag-guarded step moves the weights as torch's default AdamW step does."""
    ds = _stage1_ds(*data)
    batches = list(DataLoader(ds, batch_size=4))[:2]
    # one view: the reference below computes the plain (single-view) loss
    # float32 (auto is bfloat16 on a CPU that computes it): the step against the update by hand
    config = train_config(
        batch_size=4, weight_decay=0.1, grad_clip=0.5, consistency=0.0, precision="fp32"
    )
    fused, _ = _steps(ds, [(b, seed) for seed, b in enumerate(batches)], config)
    model = _model(0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.1)
    for seed, batch in enumerate(batches):
        torch.manual_seed(seed)
        x = ((batch["x"].float() + 5.5) / 1.5) * batch["mask"].unsqueeze(-1)
        optimizer.zero_grad()
        loss_for_batch(model(x), batch, config).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    initial = _model(0).state_dict()
    moved = "output_layer.output_projection.weight"
    assert not torch.equal(model.state_dict()[moved], initial[moved])  # the steps did move it
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fused.model.state_dict()[key], value, rtol=1e-5, atol=1e-7)


class _Spy(WindowDataset):
    """`ds` that records the items read (in-process loading) and has NaN features in item
    `bad`."""

    def __init__(self, ds, bad=None):
        self.ds, self.bad, self.seen = ds, bad, []

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, item):
        self.seen.append(item)
        window = self.ds[item]
        if item == self.bad:
            window["x"] = torch.full_like(window["x"], math.nan)
        return window


def _train_briefly(tmp_path, ds, model, log=lambda s: None, **settings):
    """Two epochs of `model` on `ds` in batches of 4 (fixed validation score)."""
    return train(
        _bundle(model),
        ds,
        lambda m: 0.5,
        train_config(epochs=2, batch_size=4, patience=5, **settings),
        tmp_path / "best.pt",
        tmp_path / "last.pt",
        device=CPU,
        log=log,
    )


def test_each_epoch_reads_the_sampler_order_of_seed_plus_epoch(tmp_path, data):
    ds = _Spy(_stage1_ds(*data))
    _train_briefly(tmp_path, ds, _model(0), seed=11, shuffle_block=3)
    n = len(ds)
    assert ds.seen == block_shuffled(n, 3, 11).tolist() + block_shuffled(n, 3, 12).tolist()


def test_training_skips_and_reports_a_non_finite_batch(tmp_path, data):
    ds = _Spy(_stage1_ds(*data), bad=5)
    logged = []
    model = _model(0)
    history = _train_briefly(tmp_path, ds, model, log=logged.append)
    steps = math.ceil(len(ds) / 4)
    assert [line for line in logged if "skipped" in line] == [
        f"epoch {e}: 1 of {steps} steps skipped (non-finite loss or gradients)" for e in (1, 2)
    ]
    assert all(math.isfinite(h.train_loss) for h in history)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("shuffle_block", [1, 3])
def test_loader_workers_do_not_change_the_result(tmp_path, data, shuffle_block):
    """Two epochs with persistent workers end with the weights of the in-process loader."""
    ds = _stage1_ds(*data)
    models = []
    for workers in (0, 2):
        models.append(_model(0))
        out = tmp_path / str(workers)
        _train_briefly(out, ds, models[-1], num_workers=workers, shuffle_block=shuffle_block)
    for key, value in models[0].state_dict().items():
        assert torch.equal(value, models[1].state_dict()[key]), key


def test_an_unfused_optimiser_state_resumes_into_the_fused_one(data):
    """A `last` checkpoint of the unfused AdamW loads; the flag-guarded step then works."""
    ds = _stage1_ds(*data)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    config = train_config(batch_size=4)
    model = _model(0)
    unfused = torch.optim.AdamW(model.parameters(), lr=config.lr)
    loss_for_batch(model(batch["x"].float()), batch, config).backward()
    unfused.step()
    run = _Run.start(_bundle(model), config, CPU, ds)
    _load_optimizer(run.optimizer, unfused.state_dict())
    assert all(g["fused"] for g in run.optimizer.param_groups)
    _train_step(run, batch, _EpochTotals.zeros(CPU))  # an unfused AdamW refuses the flag
    steps = [s["step"] for s in run.optimizer.state_dict()["state"].values()]
    assert steps and all(step == 2 for step in steps)


def test_a_poisoned_loss_keeps_finite_gradients_and_spoils_the_others():
    """A non-finite loss whose gradients would be finite still flags its step."""
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    _poisoned((w**2).sum()).backward()
    assert torch.equal(w.grad, 2 * w.detach())
    w.grad = None
    _poisoned((w**2).sum() + math.inf).backward()
    assert torch.isnan(w.grad).all()


@pytest.mark.parametrize(
    ("epochs", "patience", "how"), [(2, 5, "finished"), (4, 1, "early-stopped")]
)
def test_a_finished_run_is_trained_again_not_resumed(tmp_path, data, epochs, patience, how):
    """A forced rerun finds the `last` of a finished run (all epochs, or stopped early) and
    trains afresh instead of resuming it into nothing."""
    ds = _stage1_ds(*data)

    def run(logged):
        validations = []

        def validate(bundle):
            validations.append(1)
            return 0.5

        config = train_config(epochs=epochs, batch_size=4, patience=patience)
        best, last = tmp_path / "best.pt", tmp_path / "last.pt"
        history = train(_bundle(_model(0)), ds, validate, config, best, last, CPU, logged.append)
        return history, len(validations)

    first, validated = run([])
    assert validated == len(first) == 2
    logged: list[str] = []
    again, validated = run(logged)
    assert validated == 2 and [h.epoch for h in again] == [1, 2]
    assert [line for line in logged if "afresh" in line] == [
        f"{tmp_path / 'last.pt'}: that run {how} after epoch 2; starting afresh"
    ]
    saved = read_checkpoint_state(tmp_path / "last.pt")["training_state"]["history"]
    assert saved == [h.to_dict() for h in again]  # plain dicts: weights_only loads them


def test_stage2_refuses_an_init_checkpoint_of_another_model_than_the_student():
    student = {"arch": "btc", "hparams": {"hidden_size": 16}}
    where = "stage2.init"
    check_init_is_student(where, "init.pt", student, "btc", {"hidden_size": 16, "num_layers": 1})
    with pytest.raises(ConfigError, match=r"^stage2\.init: init\.pt holds a model .*arch 'btc'"):
        check_init_is_student(where, "init.pt", student, "chordnet", {"t_layer": 1})
    with pytest.raises(ConfigError, match=r"hidden_size 16 \(the model: 32\).*`mirkd info init"):
        check_init_is_student(where, "init.pt", student, "btc", {"hidden_size": 32})


def test_a_consistency_step_is_the_two_views_passed_separately(data):
    """One pass of both views gives the loss and gradients of a pass per view, for the same
    draws (no dropout: the model in eval mode; no clipping: a huge grad_clip)."""
    ds = _stage1_ds(*data)
    config = train_config(batch_size=4, consistency=1.0, grad_clip=1e9, precision="fp32")
    batch = next(iter(DataLoader(ds, batch_size=4)))
    run = _Run.start(_bundle(_model(0)), config, CPU, ds)
    run.model.eval()
    totals = _EpochTotals.zeros(CPU)
    torch.manual_seed(3)
    _train_step(run, batch, totals)
    got_grads = [p.grad.clone() for p in run.model.parameters() if p.grad is not None]

    alone = _Run.start(_bundle(_model(0)), config, CPU, ds)
    alone.model.eval()
    mask = batch["mask"]
    torch.manual_seed(3)
    view = second_view(batch["x"], batch["y"], batch.get("probs"), alone.rotations)
    x2 = alone.normalise(view.x, mask)
    x2 = (x2 + NOISE * torch.randn_like(x2)) * mask.unsqueeze(-1)
    logits1 = alone.model(alone.normalise(batch["x"], mask))
    logits2 = alone.model(x2)
    view_batch = {"y": view.y, "mask": mask}
    if view.probs is not None:
        view_batch["probs"] = view.probs
    loss = 0.5 * (
        loss_for_batch(logits1, batch, config) + loss_for_batch(logits2, view_batch, config)
    ) + consistency_loss(logits1, logits2, view.shift, mask, alone.rotations)
    loss.backward()
    assert totals.mean_loss() == pytest.approx(loss.item(), rel=1e-5)
    want_grads = [p.grad for p in alone.model.parameters() if p.grad is not None]
    assert len(got_grads) == len(want_grads) > 0
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("native", [True, False], ids=["cpu-computes-bf16", "cpu-without"])
def test_precision_picks_the_step_autocast(monkeypatch, native):
    monkeypatch.setattr(trainer, "cpu_computes_bf16", lambda: native)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype(cpu, "auto", "btc") == (torch.bfloat16 if native else None)
    assert amp_dtype(cpu, "auto", "chordnet") is None  # measured slower in bf16 on a CPU
    for arch in ("btc", "chordnet"):
        assert amp_dtype(cpu, "fp32", arch) is None
        assert amp_dtype(cpu, "bf16", arch) == torch.bfloat16
        assert amp_dtype(cuda, "fp32", arch) is None  # decided before any CUDA call
    assert train_config("stage1").precision == "auto"
    with pytest.raises(ConfigError, match="precision 'fp16' unknown"):
        dataclasses.replace(train_config(), precision="fp16")


def test_a_bf16_cpu_step_stays_near_the_fp32_step_and_keeps_fp32_weights(data):
    """bfloat16 autocast on the CPU: weights, gradients and optimiser state stay float32, and
    the same batch and dropout draws give nearly the fp32 step's loss (bf16 has 8 bits of
    mantissa: agreement to ~1 %, not to the bit)."""
    ds = _stage1_ds(*data)
    batch = next(iter(DataLoader(ds, batch_size=8)))
    losses = {}
    for precision in ("fp32", "bf16"):
        run, totals = _steps(ds, [(batch, 0)], train_config(batch_size=8, precision=precision))
        assert run.amp_dtype == (torch.bfloat16 if precision == "bf16" else None)
        assert all(p.dtype == torch.float32 for p in run.model.parameters())
        moments = run.optimizer.state[next(run.model.parameters())]["exp_avg"]
        assert moments.dtype == torch.float32 and torch.isfinite(moments).all()
        losses[precision] = totals.mean_loss()
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
    assert losses["bf16"] != losses["fp32"]  # autocast did run in bfloat16


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_precision_auto_stays_out_of_job_params_and_comes_back(precision):
    """A job's params omit `precision: auto` (the device's choice: no retraining on upgrade);
    the step's TrainConfig has it back. Other values are stated."""
    settings = train_config(precision=precision).to_dict()
    device = settings.pop("device")
    params = job_settings({**settings, "init": None})
    assert ("precision" in params) == (precision != "auto") and "init" not in params
    assert TrainConfig.from_settings(params, device) == train_config(precision=precision)
