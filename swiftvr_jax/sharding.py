"""Device mesh, the ONE table of parameter sharding rules, and multi-host start-up.

The mesh has axes (data, fsdp, tensor). Batches shard over data x fsdp. Parameters and
optimizer state shard by the rules below, matched on the dotted parameter path (e.g.
`dit.blocks.even.attn1.to_q.kernel`): the spec names mesh axes for the TRAILING dims, any
leading dims (the stacked-layer axis) stay unsharded, and a dim that the mesh axis does not
divide is left unsharded. Window attention keeps windows in the batch dimension, so it
needs no communication beyond what these rules imply.
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from swiftvr_jax.config import ConfigError, MeshConfig

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# (regex on the dotted parameter path, mesh axes of the trailing dims). First match wins.
RULES: tuple[tuple[str, tuple], ...] = (
    (r"attn[12]\.to_(q|k|v)\.kernel$", ("fsdp", "tensor")),  # column-parallel
    (r"attn[12]\.to_(q|k|v)\.bias$", ("tensor",)),
    (r"attn[12]\.norm_(q|k)\.scale$", ("tensor",)),
    (r"attn[12]\.to_out\.kernel$", ("tensor", "fsdp")),  # row-parallel
    (r"ffn\.proj_in\.kernel$", ("fsdp", "tensor")),
    (r"ffn\.proj_in\.bias$", ("tensor",)),
    (r"ffn\.proj_out\.kernel$", ("tensor", "fsdp")),
    (r"(time_proj|time_embedder_\d|text_embedder_\d|dit\.proj_out)\.kernel$", ("fsdp", None)),
    (r"patch_embedding\.kernel$", (None, None, None, None, "fsdp")),
    (r"^(reae|disc)\.", ()),  # small conv nets (ReAE 41M): replicated, so their convs stay data-parallel
    (r"\.kernel$", ("fsdp",)),  # the rest: shard output channels over fsdp
    (r".*", ()),  # biases, norms, tables: replicated
)


def make_mesh(cfg: MeshConfig, devices=None) -> jax.sharding.Mesh:
    """A (data, fsdp, tensor) mesh; one axis of size -1 takes the remaining devices."""
    devices = list(jax.devices() if devices is None else devices)
    shape = [cfg.data, cfg.fsdp, cfg.tensor]
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ConfigError(f"mesh {dict(zip(AXES, shape))}: sizes must be positive, at most one -1")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if len(devices) % known:
            raise ConfigError(f"mesh {dict(zip(AXES, shape))} does not divide {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // known
    if int(np.prod(shape)) != len(devices):
        raise ConfigError(f"mesh {dict(zip(AXES, shape))} needs {int(np.prod(shape))} devices, "
                          f"{len(devices)} are available")
    # Auto axes: XLA propagates shardings through the model (no per-op sharding annotations).
    return jax.make_mesh(tuple(shape), AXES, devices=devices, axis_types=(jax.sharding.AxisType.Auto,) * 3)


def spec_for(path: str, shape: tuple[int, ...], mesh: jax.sharding.Mesh) -> P:
    """The PartitionSpec the rules give a parameter of this path and shape on `mesh`."""
    for pattern, trailing in RULES:
        if re.search(pattern, path):
            break
    trailing = trailing[-len(shape):] if len(shape) else ()
    axes = [None] * (len(shape) - len(trailing)) + list(trailing)
    for i, ax in enumerate(axes):  # leave a dim unsharded where the axis does not divide it
        if ax is not None and shape[i] % mesh.shape[ax]:
            axes[i] = None
    return P(*axes)


def _path_str(path) -> str:
    if path and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
        path = path[:-1]  # an nnx.Variable leaf flattens to `<param>.value`
    return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def tree_shardings(tree, mesh: jax.sharding.Mesh, prefix: str = ""):
    """NamedShardings for every array leaf of a (pure-dict or NNX) parameter-shaped pytree."""
    def one(path, leaf):
        name = prefix + _path_str(path)
        return NamedSharding(mesh, spec_for(name, tuple(np.shape(leaf)), mesh))
    return jax.tree_util.tree_map_with_path(one, tree)


def batch_sharding(mesh: jax.sharding.Mesh, ndim: int) -> NamedSharding:
    """Sharding of a batch array: leading dim over (data, fsdp), the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def constrain_batch(x):
    """Pin an activation's leading (batch) axis to (data, fsdp) when traced under `jax.set_mesh`.

    A no-op without a mesh (inference) or when the batch does not divide. Without it XLA's
    propagation may gather the batch onto every device to match fsdp-sharded weights.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names):
        return x
    if x.shape[0] % (mesh.shape["data"] * mesh.shape["fsdp"]):
        return x
    return jax.lax.with_sharding_constraint(x, P(BATCH_AXES, *([None] * (x.ndim - 1))))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def maybe_initialize_distributed() -> bool:
    """Call `jax.distributed.initialize()` when the launch environment describes several processes.

    Recognised: JAX_COORDINATOR_ADDRESS + JAX_NUM_PROCESSES + JAX_PROCESS_ID, or a SLURM job
    with more than one task (JAX reads SLURM's variables itself). Returns True if initialised.
    """
    env = os.environ
    if "JAX_COORDINATOR_ADDRESS" in env:
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env.get("JAX_NUM_PROCESSES", "1")),
                                   process_id=int(env.get("JAX_PROCESS_ID", "0")))
        return True
    if int(env.get("SLURM_NTASKS", "1")) > 1:
        jax.distributed.initialize()
        return True
    return False
