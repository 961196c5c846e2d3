"""Training checkpoints: Orbax `CheckpointManager` with asynchronous saves and keep-last-N.

Layout: `workdir/checkpoints/<step>/{state, meta, checksums}/`.
- `state`: the array pytree (params, optimizer state, EMA, step), restored onto whatever
  mesh the caller's abstract state names, so a run may resume on a different mesh shape.
- `meta`: a JSON dict (resolved config, data-iterator state, RNG as ints, counters).
- `checksums`: one uint32 sum of the bit patterns per array leaf, taken on device at save
  time. Orbax's zstd-compressed chunks can decode damaged bytes into wrong values without
  an error, so restore compares these sums to catch that.

A state with non-finite values is never written (`NonFiniteError`). A damaged or
uncommitted newest step is reported with `logging.warning`, renamed to `<step>.damaged`
(so the run can save that step number again) and the previous step is restored.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

_ITEMS = ("state", "meta", "checksums")
# Orbax writes this file last, just before the atomic rename (or as the commit on GCS).
_COMMIT_MARKER = "commit_success.txt"


class NonFiniteError(ValueError):
    """The state passed to `Checkpointer.save` holds NaN or Inf; nothing was written."""


class CheckpointError(RuntimeError):
    """A requested checkpoint, or every checkpoint on disk, could not be restored."""


def _bits(x: jax.Array) -> jax.Array:
    """Bit pattern of `x` as uint32 (8-byte dtypes gain a trailing axis of 2)."""
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


@jax.jit
def _fingerprint(state: Any) -> tuple[jax.Array, list[jax.Array]]:
    """(all float leaves finite: bool[], per-leaf bit sums: [uint32[]]), in one program."""
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(state)]
    finite = jnp.bool_(True)
    for x in leaves:
        if jnp.issubdtype(x.dtype, jnp.inexact):
            finite &= jnp.isfinite(x).all()
    # uint32 addition wraps, so each sum is exact and independent of sharding and order.
    # Scalars are always replicated, so every host can read them.
    return finite, [_bits(x).sum(dtype=jnp.uint32) for x in leaves]


def _checksums(state: Any) -> tuple[bool, dict[str, list]]:
    """(all finite, {leaf path: [dtype, bit sum]}) for a pytree of arrays."""
    finite, sums = jax.device_get(_fingerprint(state))
    paths = jax.tree_util.tree_flatten_with_path(state)[0]
    record = {
        jax.tree_util.keystr(path): [str(jnp.asarray(leaf).dtype), int(s)]
        for (path, leaf), s in zip(paths, sums)
    }
    return bool(finite), record


class Checkpointer:
    """Saves and restores training state under `workdir/checkpoints`.

    Args:
      workdir: run directory; checkpoints go to `workdir/checkpoints/<step>`.
      keep: number of most recent checkpoints kept on disk (older ones are deleted).
      async_save: write in a background thread; `save` returns once arrays are on host.
    """

    def __init__(self, workdir: str | os.PathLike, keep: int = 3, async_save: bool = True):
        assert keep >= 1, keep
        # Orbax's OCDBT writer refuses relative paths, and only when the first save runs.
        self.directory = os.path.join(os.path.abspath(os.fspath(workdir)), "checkpoints")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,  # leftovers of a save interrupted by a crash
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=_ITEMS)

    def save(self, step: int, state: Any, meta: dict, force: bool = False) -> bool:
        """Starts writing checkpoint `step`; returns False if the save policy skipped it.

        Args:
          step: training step, the checkpoint's name; must exceed the latest saved step.
          state: pytree of `jax.Array` (any sharding; dicts, NamedTuples such as optax states).
          meta: JSON-serialisable dict stored alongside (config, data-iterator state, RNG ints).
          force: save even if the manager's save-interval policy would skip this step.

        Raises:
          NonFiniteError: a float leaf of `state` holds NaN or Inf (nothing is written).
          TypeError: `meta` is not JSON-serialisable.
        """
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as e:
            raise TypeError(f"checkpoint meta must be JSON-serialisable: {e}") from e
        finite, checksums = _checksums(state)
        if not finite:
            raise NonFiniteError(f"state at step {step} has non-finite values; not saving it")
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(meta),
            checksums=ocp.args.JsonSave(checksums),
        )
        return self._manager.save(step, args=args, force=force)

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk; re-raises their errors."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager's threads."""
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def latest_step(self) -> int | None:
        """Newest step on disk, or None. Not verified: `restore` may fall back past it."""
        self.wait()
        self._manager.reload()
        return self._manager.latest_step()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[int, Any, dict] | None:
        """Restores a checkpoint onto the shardings named in `abstract_state`.

        Args:
          abstract_state: pytree of `jax.ShapeDtypeStruct` with `.sharding` set (e.g.
            `NamedSharding` on the current mesh), same structure as the saved state.
          step: step to restore; None means the newest good one, falling back past damaged
            or uncommitted steps (each reported with `logging.warning` and renamed to
            `<step>.damaged`).

        Returns:
          (step, state, meta), or None when there is no checkpoint to resume from.

        Raises:
          ValueError: a leaf of `abstract_state` has no sharding.
          CheckpointError: the requested step, or every step on disk, is unreadable.
        """
        for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]:
            if not isinstance(leaf, jax.ShapeDtypeStruct) or leaf.sharding is None:
                raise ValueError(
                    f"abstract_state{jax.tree_util.keystr(path)} needs a sharding: build it as "
                    "jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))"
                )
        self.wait()
        self._manager.reload()
        if step is not None:
            try:
                return self._restore_step(step, abstract_state)
            except Exception as e:
                message = f"cannot restore step {step} from {self.directory}: {e}"
                raise CheckpointError(message) from e

        damaged = {}  # step -> reason
        for candidate in sorted(self._manager.all_steps(), reverse=True):
            try:
                restored = self._restore_step(candidate, abstract_state)
            # Damage surfaces as tensorstore, JSON or OS errors of many types.
            except Exception as e:
                damaged[candidate] = f"{type(e).__name__}: {e}"
                log.warning(
                    "checkpoint %s/%d is damaged or incomplete (%s); trying the previous one",
                    self.directory, candidate, damaged[candidate],
                )
                continue
            self._set_aside(list(damaged))
            return restored
        if damaged:
            reasons = "; ".join(f"step {s}: {r}" for s, r in damaged.items())
            raise CheckpointError(f"no checkpoint in {self.directory} is readable: {reasons}")
        return None

    def _restore_step(self, step: int, abstract_state: Any) -> tuple[int, Any, dict]:
        step_dir = os.path.join(self.directory, str(step))
        if not os.path.exists(os.path.join(step_dir, _COMMIT_MARKER)):
            raise CheckpointError(f"{step_dir} has no {_COMMIT_MARKER}: the save never finished")
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            meta=ocp.args.JsonRestore(),
            checksums=ocp.args.JsonRestore(),
        )
        restored = self._manager.restore(step, args=args)
        finite, checksums = _checksums(restored.state)
        if not finite:
            raise CheckpointError(f"{step_dir} holds non-finite values, which are never saved")
        for key, (dtype, bit_sum) in checksums.items():
            saved = restored.checksums.get(key)
            if saved is None:
                raise CheckpointError(f"{step_dir}: no checksum recorded for state{key}")
            # A leaf restored into another dtype has other bits; only same-dtype leaves compare.
            if saved[0] == dtype and saved[1] != bit_sum:
                raise CheckpointError(f"{step_dir}: checksum mismatch for state{key}")
        return step, restored.state, restored.meta

    def _set_aside(self, steps: list[int]) -> None:
        """Renames damaged step directories to `<step>.damaged[.n]`; Orbax then ignores them."""
        if not steps:
            return
        if jax.process_index() == 0:
            for step in steps:
                step_dir = os.path.join(self.directory, str(step))
                target, n = f"{step_dir}.damaged", 1
                while os.path.exists(target):
                    target, n = f"{step_dir}.damaged.{n}", n + 1
                os.replace(step_dir, target)
        ocp.multihost.sync_global_processes("swiftvr_checkpoint_set_aside")
        self._manager.reload()
