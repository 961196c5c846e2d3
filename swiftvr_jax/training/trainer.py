"""Sharded training steps for the stages `reae`, `teacher` and `distill`.

Parameters are grouped (`reae`, `dit`, `text`); a stage trains some groups and keeps the
rest frozen (passed to the step, never donated, no optimizer state). The train state is a
plain pytree {params, opt_state, ema, step, skipped} created already sharded by a jitted
init with `out_shardings`; the step is compiled once with `in_shardings`/`out_shardings`
and donates the state. A step whose loss or gradients are not finite leaves the state
unchanged (and counts it in `skipped`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from swiftvr_jax import sharding as shd
from swiftvr_jax.config import Config, ConfigError
from swiftvr_jax.models.dit import DiT
from swiftvr_jax.models.reae import ReAE, upsample
from swiftvr_jax.models.swiftvr import SwiftVR
from swiftvr_jax.training import losses

STAGES = ("reae", "teacher", "distill")
TRAINED = {"reae": ("reae",), "teacher": ("dit", "text"), "distill": ("dit", "text")}


def stage_config(cfg: Config, stage: str) -> Config:
    """The teacher always uses full attention; other stages keep `cfg.model.attention`."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    if stage == "teacher":
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attention="full"))
    return cfg


def param_groups(model: SwiftVR) -> dict[str, Any]:
    """{'reae': State, 'dit': State, 'text': array} of a SwiftVR model's parameters."""
    return {"reae": nnx.state(model.reae, nnx.Param), "dit": nnx.state(model.dit, nnx.Param),
            "text": model.text.get_value()}


def group_shardings(groups: dict[str, Any], mesh) -> dict[str, Any]:
    """Shardings of parameter groups by the rules table (paths prefixed with the group name)."""
    return {name: shd.tree_shardings(tree, mesh, prefix=f"{name}.") for name, tree in groups.items()}


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """AdamW with warmup + cosine decay, global-norm clipping and optional gradient accumulation."""
    t = cfg.train
    schedule = optax.warmup_cosine_decay_schedule(0.0, t.lr, max(t.warmup_steps, 1), max(t.steps, t.warmup_steps + 1),
                                                  end_value=t.lr * 0.01)
    tx = optax.chain(optax.clip_by_global_norm(t.grad_clip), optax.adamw(schedule, b1=0.9, b2=0.99,
                                                                           weight_decay=t.weight_decay))
    return optax.MultiSteps(tx, every_k_schedule=t.grad_accum) if t.grad_accum > 1 else tx


def _encode_clip(reae: ReAE, x):
    """Whole-clip causal encode from zero memory: [B, T, H, W, 3] -> [B, T/4, H/16, W/16, C]."""
    b, _, h, w, _ = x.shape
    return reae.encode(x, reae.init_encoder_state(b, h, w))[0]



def update_ema(ema, params, decay: float, step):
    """EMA with warm-up: the decay is min(decay, (1 + step) / (10 + step)), so the random
    initialisation fades out early instead of keeping a weight of decay^steps."""
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, q: (d * e + (1 - d) * q).astype(e.dtype), ema, params)

class ShardedStep:
    """The compiled, state-donating step and the batch placement shared by the stage trainers.

    Subclasses set `mesh`, `state_shardings`, `frozen_shardings`, `_step = None` and `_train_step`.
    """

    def step(self, state, frozen, batch):
        """One optimizer step. `batch` arrays are sharded over (data, fsdp) on the batch axis."""
        if self._step is None:
            batch_sh = {k: shd.batch_sharding(self.mesh, v.ndim) for k, v in batch.items()}
            self._step = jax.jit(self._train_step, in_shardings=(self.state_shardings, self.frozen_shardings, batch_sh),
                                 out_shardings=(self.state_shardings, shd.replicated(self.mesh)), donate_argnums=(0,))
        with jax.set_mesh(self.mesh):  # activation constraints (sharding.constrain_batch) read this mesh
            return self._step(state, frozen, batch)

    def shard_batch(self, batch: dict[str, Any]) -> dict[str, jax.Array]:
        """Place a host batch (this process's rows) onto the mesh, batch axis over (data, fsdp)."""
        return {k: jax.make_array_from_process_local_data(shd.batch_sharding(self.mesh, v.ndim), v)
                for k, v in batch.items() if k in ("hq", "lq")}


class Trainer(ShardedStep):
    """Builds the sharded state and the compiled step of one stage on a mesh.

    `init(groups)` places concrete parameter groups (from random init or a weight directory)
    onto the mesh; `step(state, batch)` runs one optimizer step and returns (state, metrics).
    """

    def __init__(self, cfg: Config, stage: str, mesh):
        self.cfg = stage_config(cfg, stage)
        self.stage = stage
        self.mesh = mesh
        self.trained = TRAINED[stage]
        abstract = nnx.eval_shape(lambda: SwiftVR(self.cfg, rngs=nnx.Rngs(0)))
        self.graphs = {"reae": nnx.graphdef(abstract.reae), "dit": nnx.graphdef(abstract.dit)}
        if stage == "distill":  # the frozen teacher runs full attention on the same parameter layout
            tcfg = dataclasses.replace(self.cfg.model, attention="full")
            self.graphs["teacher_dit"] = nnx.graphdef(nnx.eval_shape(lambda: DiT(tcfg, rngs=nnx.Rngs(0))))
        groups = param_groups(abstract)
        self.shardings = group_shardings(groups, mesh)
        self.tx = make_optimizer(self.cfg)
        trained = {k: groups[k] for k in self.trained}
        opt_abstract = jax.eval_shape(self.tx.init, trained)
        opt_shardings = self._opt_shardings(opt_abstract)
        rep = shd.replicated(mesh)
        self.state_shardings = {"params": {k: self.shardings[k] for k in self.trained}, "opt_state": opt_shardings,
                                "ema": {k: self.shardings[k] for k in self.trained}, "step": rep, "skipped": rep}
        self.frozen_names = [k for k in groups if k not in self.trained] + (["teacher_dit", "teacher_text"]
                                                                              if stage == "distill" else [])
        self.frozen_shardings = {k: self.shardings[k.replace("teacher_", "")] for k in self.frozen_names}
        self._step = None

    def _opt_shardings(self, opt_abstract):
        """Optimizer moments mirror their parameter's sharding; scalars are replicated."""
        rep = shd.replicated(self.mesh)

        def one(path, leaf):
            name = shd._path_str(path)
            for group in self.trained:  # moments are stored under the same group/param path
                marker = f"{group}."
                if marker in name or name.endswith(group):
                    sub = name[name.index(marker):] if marker in name else group
                    return jax.sharding.NamedSharding(self.mesh, shd.spec_for(sub, leaf.shape, self.mesh))
            return rep

        return jax.tree_util.tree_map_with_path(one, opt_abstract)

    # -- state -------------------------------------------------------------------------
    def init(self, groups: dict[str, Any]):
        """(state, frozen) placed on the mesh from concrete parameter groups.

        For `distill`, `groups` are the teacher's: the student starts as a copy.
        """
        groups = {k: jax.device_put(v, self.shardings[k]) for k, v in groups.items()}
        trained = {k: groups[k] for k in self.trained}

        def make(trained):
            return {"params": trained, "opt_state": self.tx.init(trained),
                    "ema": jax.tree.map(jnp.copy, trained), "step": jnp.zeros((), jnp.int32),
                    "skipped": jnp.zeros((), jnp.int32)}

        state = jax.jit(make, out_shardings=self.state_shardings)(trained)
        frozen = {k: groups[k] for k in groups if k not in self.trained}
        if self.stage == "distill":
            frozen["teacher_dit"] = jax.tree.map(jnp.copy, groups["dit"])
            frozen["teacher_text"] = jnp.copy(groups["text"])
        return state, frozen

    def random_groups(self, seed: int) -> dict[str, Any]:
        """Parameter groups of a freshly initialised model, created already sharded."""
        out_sh = self.shardings
        return jax.jit(lambda: param_groups(SwiftVR(self.cfg, rngs=nnx.Rngs(seed))), out_shardings=out_sh)()

    # -- loss --------------------------------------------------------------------------
    def loss(self, params, frozen, batch, rng):
        """(total loss, {term: value}) of this stage for a batch {'hq', 'lq'}."""
        p = {**frozen, **params}
        t = self.cfg.train
        reae = nnx.merge(self.graphs["reae"], p["reae"])
        hq = batch["hq"].astype(jnp.float32)
        if self.stage == "reae":
            z = _encode_clip(reae, hq)
            b, _, h, w, _ = z.shape
            lq_up = reae.residual_base(batch["lq"].astype(jnp.float32), hq.shape[2:4]) if reae.cfg.residual else None
            recon, _ = reae.decode(z, reae.init_decoder_state(b, h, w), lq_up)
            lag = reae.frames_to_trim  # decoded frame i shows input frame i - lag
            pred, target = recon[:, lag:], hq[:, : hq.shape[1] - lag]
            terms = {"l1": losses.l1(pred, target), "perceptual": losses.gradient_loss(pred, target),
                     "temporal": losses.temporal_loss(pred, target)}
            total = terms["l1"] + t.perceptual_weight * terms["perceptual"] + t.temporal_weight * terms["temporal"]
            return total, terms
        # DiT stages: the frozen ReAE maps both clips to latents.
        z_hq = jax.lax.stop_gradient(_encode_clip(reae, hq))
        z_lq = jax.lax.stop_gradient(_encode_clip(reae, upsample(batch["lq"].astype(jnp.float32), hq.shape[2:4])))
        tt = losses.sample_t(rng, hq.shape[0], t.t_dist)
        z_t, v = losses.flow_pair(z_hq, z_lq, tt)
        dit = nnx.merge(self.graphs["dit"], p["dit"])
        pred = dit(z_t, 1000.0 * tt, p["text"])
        terms = {"flow": losses.mse(pred, v)}
        total = terms["flow"]
        if self.stage == "distill":
            teacher = nnx.merge(self.graphs["teacher_dit"], p["teacher_dit"])
            v_teacher = jax.lax.stop_gradient(teacher(z_t, 1000.0 * tt, p["teacher_text"]))
            terms["distill"] = losses.mse(pred, v_teacher)
            total = total + t.lambda_distill * terms["distill"]
        return total, terms

    # -- step --------------------------------------------------------------------------
    def _train_step(self, state, frozen, batch):
        rng = jax.random.fold_in(jax.random.key(self.cfg.train.seed), state["step"])
        (loss, terms), grads = jax.value_and_grad(self.loss, has_aux=True)(state["params"], frozen, batch, rng)
        gnorm = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(grads)))
        ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        ema = update_ema(state["ema"], params, self.cfg.train.ema_decay, state["step"])

        def keep(new, old):  # a non-finite step changes nothing
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        new_state = {"params": keep(params, state["params"]), "opt_state": keep(opt_state, state["opt_state"]),
                     "ema": keep(ema, state["ema"]), "step": state["step"] + 1,
                     "skipped": state["skipped"] + (~ok).astype(jnp.int32)}
        return new_state, {"loss": loss, "grad_norm": gnorm, "finite": ok, **terms}
