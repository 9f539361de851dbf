"""Replay buffer: uint8 single-frame storage, wrap-around, frame stacks across episode boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.replay import ReplayBuffer


def frame(value: int, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    return np.full(shape, value % 256, dtype=np.uint8)


def fill(buffer: ReplayBuffer, episode_lengths: list[int], shape: tuple[int, ...] = (2, 3)) -> list[dict]:
    """Write episodes whose frames count up 1, 2, 3, ...; returns the ground-truth log of every slot written."""
    log, counter = [], 0
    for length in episode_lengths:
        counter += 1
        buffer.add_first(frame(counter, shape))
        log.append(dict(value=counter, first=True))
        for step in range(length):
            counter += 1
            done = step == length - 1
            buffer.add(action=counter % 3, reward=float(counter), terminated=done, next_frame=frame(counter, shape))
            log[-1].update(action=counter % 3, reward=float(counter), terminated=done, valid=True)
            log.append(dict(value=counter, first=False))
    return log


def expected_stack(log: list[dict], slot: int, stack: int) -> list[int]:
    """Frame values of the stacked state at log position ``slot``: zeros before the episode's first frame."""
    values = []
    for back in range(stack - 1, -1, -1):
        j = slot - back
        crosses = j < 0 or any(log[k]["first"] for k in range(j + 1, slot + 1))
        values.append(0 if crosses else log[j]["value"])
    return values


def test_frames_stored_once_as_uint8_and_atari_memory_budget() -> None:
    buffer = ReplayBuffer(1000, (84, 84), np.uint8, frame_stack=4)
    assert buffer.frames.dtype == torch.uint8
    assert buffer.frames.shape == (1000, 84, 84)  # one frame per slot, not a (4, 84, 84) stack
    per_slot = buffer.bytes_per_slot()
    assert per_slot < 84 * 84 + 16
    assert per_slot * 1_000_000 <= 7.5e9


def test_wrap_around_keeps_newest_and_never_samples_overwritten_history() -> None:
    capacity, stack = 16, 4
    buffer = ReplayBuffer(capacity, (2, 3), np.uint8, frame_stack=stack, seed=3)
    log = fill(buffer, [7, 9, 11, 5])  # 36 slots through a ring of 16
    assert buffer.size == capacity and buffer.pos == len(log) % capacity
    newest = log[-capacity:]
    stored = [int(buffer.frames[(len(log) - capacity + i) % capacity, 0, 0]) for i in range(capacity)]
    assert stored == [entry["value"] for entry in newest]
    oldest_kept = len(log) - capacity
    for _ in range(50):
        batch = buffer.sample(32)
        for row, slot in enumerate(batch.indices):
            # Map the ring slot back to its position in the log (the newest `capacity` entries).
            pos = oldest_kept + (int(slot) - oldest_kept) % capacity
            assert pos >= oldest_kept + stack - 1, "sampled a slot whose stack history was overwritten"
            entry = log[pos]
            assert entry.get("valid", False)
            assert batch.obs[row, :, 0, 0].tolist() == expected_stack(log, pos, stack)
            assert batch.next_obs[row, :, 0, 0].tolist() == expected_stack(log, pos + 1, stack)
            assert int(batch.actions[row]) == entry["action"]
            assert float(batch.rewards[row]) == entry["reward"]
            assert bool(batch.terminated[row]) == entry["terminated"]


def test_frame_stack_zero_padded_at_episode_start() -> None:
    buffer = ReplayBuffer(64, (1,), np.uint8, frame_stack=4, seed=0)
    log = fill(buffer, [2, 1, 6], shape=(1,))
    # First frame of the third episode (log position 5): only itself, earlier frames zeroed.
    third_start = 5
    assert log[third_start]["first"]
    states = buffer._stacked(np.array([third_start, third_start + 1, third_start + 3, 1]))
    assert states[:, :, 0].tolist() == [[0, 0, 0, 6], [0, 0, 6, 7], [6, 7, 8, 9], [0, 0, 1, 2]]
    assert buffer.current_state()[:, 0].tolist() == expected_stack(log, len(log) - 1, 4)


def test_episode_final_frame_is_not_a_transition_start() -> None:
    buffer = ReplayBuffer(64, (2, 3), np.uint8, frame_stack=1, seed=1)
    log = fill(buffer, [3, 4, 2])
    finals = {i for i, entry in enumerate(log) if not entry.get("valid", False)}
    assert finals == {3, 8, 11}  # last frame of each episode (its successor is the next episode's first)
    seen = set()
    for _ in range(30):
        batch = buffer.sample(16)
        seen.update(int(i) for i in batch.indices)
        assert not finals & set(int(i) for i in batch.indices)
        # next_obs is the frame that followed, even at a terminal step
        assert torch.equal(batch.next_obs[:, 0, 0].long(), batch.obs[:, 0, 0].long() + 1)
    assert seen == set(range(len(log))) - finals


def test_latest_is_the_newest_transition() -> None:
    buffer = ReplayBuffer(5, (2, 3), np.uint8, frame_stack=2, seed=0)
    log = fill(buffer, [4, 3])
    batch = buffer.latest()
    assert batch.obs[0, :, 0, 0].tolist() == expected_stack(log, len(log) - 2, 2)
    assert int(batch.next_obs[0, -1, 0, 0]) == log[-1]["value"]
    buffer.add_first(frame(99))
    with pytest.raises(RuntimeError):
        buffer.latest()
