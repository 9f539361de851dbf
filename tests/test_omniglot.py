"""Omniglot loader, episode sampler, conv net and MAML classifier on a generated image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.maml_omniglot import DEFAULTS, PAPER, ConvNet, MAMLClassifier
from baselines.meta_common import train_meta_learner
from suite.data.omniglot import EpisodeSampler, parse_env, read_character_folders, split_characters
from suite.registry import get_env

N_ALPHABETS, N_CHARS, N_DRAWINGS, SIZE = 2, 5, 6, 105


def _glyph(rng: np.random.Generator) -> np.ndarray:
    """A random asymmetric black-on-white stroke pattern at the original 105x105 resolution."""
    img = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    for _ in range(4):
        r, c = rng.integers(5, SIZE - 35, size=2)
        img[r:r + 30, c:c + 6] = 0
    img[5:15, 5:60] = 0  # a bar along the top edge: no rotation maps a glyph onto itself
    return img


@pytest.fixture(scope="module")
def omniglot_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("omniglot") / "images_background"
    rng = np.random.default_rng(0)
    for a in range(N_ALPHABETS):
        for c in range(N_CHARS):
            folder = root / f"Alphabet_{a}" / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            glyph = _glyph(rng)
            for d in range(N_DRAWINGS):
                noisy = glyph.copy()
                noisy[rng.random(glyph.shape) < 0.02] = 0  # each drawing differs a little
                Image.fromarray(noisy).save(folder / f"{a}{c}_{d:02d}.png")
    return root


def test_reader_resizes_and_inverts(omniglot_folder: Path) -> None:
    images = read_character_folders(omniglot_folder)
    assert images.shape == (N_ALPHABETS * N_CHARS, N_DRAWINGS, 28, 28) and images.dtype == torch.uint8
    assert images[:, :, 2:4, 3:14].float().mean() > 200  # the top bar: strokes are bright after inversion
    assert images[:, :, 20:, 20:].float().mean() < 120
    train, test = split_characters(images, n_train=7)
    assert train.shape[0] == 7 and test.shape[0] == 3
    assert not any(torch.equal(a, b) for a in train for b in test)


def _decode(x: torch.Tensor, n_drawings: int) -> tuple[int, int, int]:
    """(character, drawing, rotation) of an image made by ``_coded_images``."""
    img = (x[0] * 255).round().to(torch.int64)
    corners = [img[0, 0], img[-1, 0], img[-1, -1], img[0, -1]]  # where rot90 moves the marker, turn by turn
    code = int(img[5, 5])
    return code // n_drawings, code % n_drawings, [int(v) for v in corners].index(255)


def _coded_images(n_chars: int, n_drawings: int) -> torch.Tensor:
    codes = torch.arange(n_chars * n_drawings).view(n_chars, n_drawings, 1, 1)
    images = codes.expand(n_chars, n_drawings, 28, 28).clone().to(torch.uint8)
    images[:, :, 0, 0] = 255
    return images


def test_episode_sampler() -> None:
    images = _coded_images(12, 6)
    sampler = EpisodeSampler(images, n_way=5, k_shot=2, k_query=3)
    assert sampler.classes.shape[:2] == (48, 6)
    xs, ys, xq, yq = sampler.sample(20, torch.Generator().manual_seed(0))
    assert xs.shape == (20, 10, 1, 28, 28) and xq.shape == (20, 15, 1, 28, 28) and xs.dtype == torch.float32
    rotations = set()
    for t in range(20):
        assert sorted(ys[t].tolist()) == sorted(list(range(5)) * 2)
        classes = []
        for j in range(5):
            decoded = [_decode(x, 6) for x in torch.cat([xs[t][ys[t] == j], xq[t][yq[t] == j]])]
            assert len({(c, r) for c, _, r in decoded}) == 1  # one (character, rotation) per label
            assert len({d for _, d, _ in decoded}) == 5  # 2 support + 3 query drawings, all distinct
            classes.append((decoded[0][0], decoded[0][2]))
            rotations.add(decoded[0][2])
        assert len(set(classes)) == 5
    assert rotations == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        EpisodeSampler(images, n_way=5, k_shot=5, k_query=5)


def test_conv_net_shapes() -> None:
    net = ConvNet(n_way=20)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 20)
    assert net.features(torch.rand(2, 1, 28, 28)).shape == (2, 64, 1, 1)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 4
    assert parse_env("omniglot-20way-5shot") == (20, 5) and get_env("omniglot-5way-1shot").family == "omniglot"


def test_second_order_meta_gradient_matches_a_task_loop(omniglot_folder: Path) -> None:
    torch.manual_seed(0)
    module = MAMLClassifier(n_way=3, k_shot=1, **{**DEFAULTS, "channels": 8, "inner_steps": 1, "inner_lr": 0.4,
                                                   "meta_batch": 2, "eval_steps": 1})
    episode = EpisodeSampler(read_character_folders(omniglot_folder), 3, 1, 2).sample(2, torch.Generator())
    params = list(module.net.parameters())
    got = torch.autograd.grad(module.episode_losses(episode, 1, False)[0].mean(), params)
    total = 0
    for t in range(2):
        inner = torch.nn.functional.cross_entropy(module.net(episode[0][t]), episode[1][t])
        fast = [p - 0.4 * g for p, g in zip(params, torch.autograd.grad(inner, params, create_graph=True))]
        named = dict(zip(dict(module.net.named_parameters()), fast))
        total = total + torch.nn.functional.cross_entropy(
            torch.func.functional_call(module.net, named, (episode[2][t],)), episode[3][t]) / 2
    for a, b in zip(got, torch.autograd.grad(total, params)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_few_meta_iterations_learn(omniglot_folder: Path) -> None:
    torch.manual_seed(0)
    images = read_character_folders(omniglot_folder)
    hp = {**DEFAULTS, "channels": 16, "meta_iterations": 30, "meta_batch": 4, "iters_per_step": 10,
          "eval_tasks": 40, "curve_points": 3}
    module = MAMLClassifier(n_way=5, k_shot=1, **hp)
    assert module.hparams.inner_lr == PAPER[5]["inner_lr"] and module.hparams.eval_steps == 3
    module.sampler = EpisodeSampler(images, 5, 1, 1)
    train_meta_learner(module)
    accuracy = module.evaluate(EpisodeSampler(images, 5, 1, 2))
    assert module.iteration == 30 and len(module.meta_loss_curve) == 3
    assert module.meta_loss_curve[-1][1] < module.meta_loss_curve[0][1]
    assert accuracy[-1] > accuracy[0] + 20  # adaptation on one shot per class helps far beyond chance (20%)


def test_loader_refuses_files_with_a_wrong_checksum(tmp_path: Path) -> None:
    from suite.data.download import DataUnavailable
    from suite.data.omniglot import load_omniglot

    (tmp_path / "omniglot").mkdir()
    for name in ("images_background.zip", "images_evaluation.zip"):
        (tmp_path / "omniglot" / name).write_bytes(b"not the real zip")
    with pytest.raises(DataUnavailable, match="md5"):
        load_omniglot(tmp_path)


@pytest.mark.parametrize("env, n_way, k_shot", [("omniglot-5way-1shot", 5, 1), ("omniglot-20way-5shot", 20, 5)])
def test_the_harness_resolves_the_papers_values_the_module_would_fill_in(env: str, n_way: int, k_shot: int) -> None:
    from suite.registry import get_baseline

    resolved = get_baseline("maml_omniglot").resolved(DEFAULTS, env, seed=3)
    assert {k: resolved[k] for k in PAPER[n_way]} == PAPER[n_way] and resolved["k_query"] == k_shot
    assert resolved == {**DEFAULTS, **PAPER[n_way], "k_query": k_shot}  # nothing else changes
    assert get_baseline("maml_omniglot").resolved({**DEFAULTS, "inner_lr": 0.7, "k_query": 2}, env, 0)["inner_lr"] == 0.7
    declared = MAMLClassifier(n_way=n_way, k_shot=k_shot, **{**DEFAULTS, "channels": 8})
    ran = MAMLClassifier(n_way=n_way, k_shot=k_shot, **{**resolved, "channels": 8})
    assert {k: ran.hparams[k] for k in PAPER[n_way]} == {k: declared.hparams[k] for k in PAPER[n_way]}


def test_killed_at_half_and_resumed_meta_training_is_bit_identical(omniglot_folder: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """20 meta-iterations in chunks of 5, checkpointed every 10 and killed after the first checkpoint (mid-way
    between two curve points): the resumed run ends with the uninterrupted run's weights, optimiser and curve."""
    from suite.api import RunContext
    from suite.checkpoint import Checkpointer

    images = read_character_folders(omniglot_folder)
    hp = {**DEFAULTS, "channels": 8, "meta_iterations": 20, "meta_batch": 2, "iters_per_step": 5, "curve_points": 3}

    def train(checkpoint: Checkpointer) -> MAMLClassifier:
        torch.manual_seed(0)
        module = MAMLClassifier(n_way=3, k_shot=1, **hp)
        module.sampler = EpisodeSampler(images, 3, 1, 1)
        ctx = RunContext("t", "maml", "omniglot-3way-1shot", 0, "test", "maml_omniglot", hp, tmp_path,
                         checkpoint=checkpoint)
        train_meta_learner(module, ctx)
        return module

    uninterrupted = train(Checkpointer())
    original = Checkpointer.save

    class Killed(Exception):
        """A kill right after the checkpoint reached the disk."""

    def save_then_die(self: Checkpointer, step: int, state: dict) -> Path:
        original(self, step, state)
        raise Killed

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        train(Checkpointer(tmp_path / "live", every=10))
    monkeypatch.setattr(Checkpointer, "save", original)
    resumed_checkpoint = Checkpointer(tmp_path / "live", every=10)
    resumed = train(resumed_checkpoint)
    assert resumed_checkpoint.resumed_step == 10 and resumed.iteration == 20
    assert resumed.meta_loss_curve == uninterrupted.meta_loss_curve and len(resumed.meta_loss_curve) == 3
    for a, b in zip(resumed.parameters(), uninterrupted.parameters(), strict=True):
        assert torch.equal(a, b)
