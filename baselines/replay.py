"""Experience replay in preallocated tensors, storing every frame once.

The buffer is a ring of *slots*.  Slot ``i`` holds one observation frame (for Atari one 84x84 uint8
image, never a 4-frame stack) plus the action taken from it, the reward, whether that step
terminated, and two flags:

* ``first[i]``: frame ``i`` is the first frame of an episode; stacks never reach across it
  (earlier positions of the stack are zero, as ``FrameStackObservation(padding_type="zero")``).
* ``valid[i]``: slot ``i`` starts a complete transition ``i -> i + 1``.  The last frame of an
  episode (terminal or truncated) is stored in its own slot with ``valid = False`` so that a
  truncated episode still has its true next state for bootstrapping.

A stacked state at slot ``i`` is rebuilt at sample time from frames ``i - S + 1 .. i`` masked at
episode starts; slots whose history has been overwritten by the ring (the ``S - 1`` oldest) are
never sampled.  Storage lives on the CPU as torch tensors; the hot path writes through numpy views of
the same memory (a numpy scalar store costs ~0.1 us, a tensor ``__setitem__`` several us) and samples
with vectorised numpy indexing from a seeded generator, returning torch tensors without copies.

Memory: one slot costs ``prod(frame_shape) * itemsize + 8`` bytes (1 action byte, 4 reward bytes,
3 flag bytes): 7064 bytes for Atari, so 1M transitions take 7.06 GB.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, S, *frame) if S > 1 else (B, *frame), stored dtype
    actions: torch.Tensor  # (B,) int64
    rewards: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor
    terminated: torch.Tensor  # (B,) float32, 1.0 where the bootstrap is cut
    indices: np.ndarray  # slot of each transition (tests and diagnostics)


_SLOT_ARRAYS = ("frames", "actions", "rewards", "terminated", "first", "valid")


class ReplayBuffer:
    """Ring buffer of single frames with frame-stack reconstruction and uniform vectorised sampling."""

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], frame_dtype: np.dtype | type = np.uint8,
                 frame_stack: int = 1, seed: int = 0, pin_memory: bool = False) -> None:
        if capacity < frame_stack + 2:
            raise ValueError(f"capacity {capacity} too small for frame_stack {frame_stack}")
        self.capacity = capacity
        self.frame_shape = tuple(frame_shape)
        self.stack = frame_stack
        torch_dtype = torch.from_numpy(np.zeros(0, dtype=frame_dtype)).dtype
        alloc = dict(pin_memory=pin_memory)
        self.frames = torch.zeros((capacity, *self.frame_shape), dtype=torch_dtype, **alloc)
        # Actions fit one byte for every discrete env here; widened to int64 only for the sampled batch.
        self.actions = torch.zeros(capacity, dtype=torch.uint8, **alloc)
        self.rewards = torch.zeros(capacity, dtype=torch.float32, **alloc)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, **alloc)
        self.first = torch.zeros(capacity, dtype=torch.bool, **alloc)
        self.valid = torch.zeros(capacity, dtype=torch.bool, **alloc)
        self._frames = self.frames.numpy()
        self._actions = self.actions.numpy()
        self._rewards = self.rewards.numpy()
        self._terminated = self.terminated.numpy()
        self._first = self.first.numpy()
        self._valid = self.valid.numpy()
        self._back = np.arange(frame_stack - 1, -1, -1)  # offsets i-S+1 .. i, oldest first
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.pos = 0  # next slot to write
        self.size = 0  # slots written so far, capped at capacity
        self.transitions_added = 0

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.frames, self.actions, self.rewards,
                                                           self.terminated, self.first, self.valid))

    def bytes_per_slot(self) -> int:
        return self.nbytes // self.capacity

    def state_dict(self) -> dict[str, Any]:
        """The buffer for a checkpoint: the written slots only (a ring that has not wrapped yet is saved up to its
        write position, ``size`` slots), the write position and the sampling generator."""
        n = self.size  # slots 0 .. size-1 hold data: the ring fills from 0 and wraps only when full
        return {"slots": {name: getattr(self, name)[:n].clone() for name in _SLOT_ARRAYS}, "pos": self.pos,
                "size": self.size, "transitions_added": self.transitions_added, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, saved in state["slots"].items():
            getattr(self, name)[:saved.shape[0]] = saved
        self.pos, self.size = int(state["pos"]), int(state["size"])
        self.transitions_added = int(state["transitions_added"])
        self.rng.bit_generator.state = state["rng"]

    def _write_frame(self, frame: np.ndarray, first: bool) -> None:
        p = self.pos
        self._frames[p] = frame
        self._first[p] = first
        self._valid[p] = False
        self._terminated[p] = False
        self.pos = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_first(self, frame: np.ndarray) -> None:
        """Store the first frame of a new episode."""
        self._write_frame(frame, True)

    def add(self, action: int, reward: float, terminated: bool, next_frame: np.ndarray) -> None:
        """Complete the transition from the newest frame and store the frame it led to."""
        p = (self.pos - 1) % self.capacity
        self._actions[p] = action
        self._rewards[p] = reward
        self._terminated[p] = terminated
        self._valid[p] = True
        self.transitions_added += 1
        self._write_frame(next_frame, False)

    def _stacked(self, idx: np.ndarray) -> np.ndarray:
        """States at slots ``idx`` (taken modulo the capacity): (B, S, *frame), frames before an episode start
        zeroed."""
        if self.stack == 1:
            return self._frames.take(idx, axis=0, mode="wrap")  # ``take`` costs a third of fancy indexing
        slots = (idx[:, None] - self._back[None, :]) % self.capacity  # (B, S), column S-1 is idx itself
        out = self._frames[slots]
        # Frame at column k is kept iff no episode starts strictly after it within the stack: a reversed
        # cumulative OR of the `first` flags of the later columns.
        starts = self._first[slots[:, 1:]]
        cut = np.logical_or.accumulate(starts[:, ::-1], axis=1)[:, ::-1]
        out[:, :-1][cut] = 0
        return out

    def current_state(self) -> np.ndarray:
        """The stacked state at the newest slot (what the agent acts on); a view when frames are not stacked."""
        if self.stack == 1:
            return self._frames[(self.pos - 1) % self.capacity]
        return self._stacked(np.array([(self.pos - 1) % self.capacity]))[0]

    def _sampleable(self, idx: np.ndarray) -> np.ndarray:
        ok = self._valid.take(idx)
        if self.stack > 1 and self.size == self.capacity:
            # The S-1 oldest slots have lost part of their history to the ring.
            ok &= (idx - self.pos) % self.capacity >= self.stack - 1
        return ok

    def sample(self, batch_size: int) -> Batch:
        """Uniform sample of complete transitions (rejection of the few invalid slots, vectorised)."""
        idx = self.rng.integers(0, self.size, batch_size)
        ok = self._sampleable(idx)
        while not ok.all():
            bad = ~ok
            idx[bad] = self.rng.integers(0, self.size, int(bad.sum()))
            ok = self._sampleable(idx)
        return self._gather(idx)

    def latest(self) -> Batch:
        """The most recent complete transition only (the no-replay agent of Mnih et al. 2015)."""
        idx = np.array([(self.pos - 2) % self.capacity])
        if not self._valid[idx[0]]:
            raise RuntimeError("no complete transition at the head of the buffer")
        return self._gather(idx)

    def _gather(self, idx: np.ndarray) -> Batch:
        return Batch(
            obs=torch.from_numpy(self._stacked(idx)),
            actions=torch.from_numpy(self._actions.take(idx).astype(np.int64)),
            rewards=torch.from_numpy(self._rewards.take(idx)),
            next_obs=torch.from_numpy(self._stacked(idx + 1)),
            terminated=torch.from_numpy(self._terminated.take(idx).astype(np.float32)),
            indices=idx,
        )
