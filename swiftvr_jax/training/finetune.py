"""Stage 3, `finetune`: joint adversarial fine-tuning of the whole restorer in pixel space.

Generator G = the inference path (pipeline.py) on a whole training clip from zero memory:
bilinear upsample of LQ -> ReAE encode -> one DiT step at t=1 (z_HQ = z - v(z, 1000)) -> ReAE
decode. Decoded frame i shows input frame i - lag (lag = 3), so pred[:, lag:] is compared with
hq[:, :T-lag]. Every part of G is trained, each group with its own learning-rate multiplier;
a `VideoDiscriminator` (freshly initialised) is trained with its own optimizer.

    L_G = L1 + perceptual_weight * LPIPS (or gradient_loss) + temporal_weight * L_temp
          + gan_weight * hinge_G(D(pred))
    L_D = hinge_D(D(hq), D(pred))

One jitted, donated step does a G update and then a D update on the same batch; the D update
scores the clip G produced in this step's forward (before G's update), as in Real-ESRGAN.
A step whose G or D loss or gradients are not finite changes nothing (counted in `skipped`).

State pytree: {params, opt_state, ema, disc, disc_opt_state, step, skipped}; `params` and `ema`
hold the generator groups {'reae', 'dit', 'text'} as in `Trainer`. `frozen` holds the LPIPS
backbone {'lpips': {...}} when one is loaded, else nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from swiftvr_jax import lpips as lpips_lib
from swiftvr_jax import sharding as shd
from swiftvr_jax.config import Config
from swiftvr_jax.models.discriminator import VideoDiscriminator, hinge_d_loss, hinge_g_loss
from swiftvr_jax.models.reae import upsample
from swiftvr_jax.models.swiftvr import SwiftVR
from swiftvr_jax.training import losses
from swiftvr_jax.training.trainer import ShardedStep, _encode_clip, group_shardings, param_groups, update_ema

GEN_GROUPS = ("reae", "dit", "text")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Settings of the finetune stage not (yet) in `TrainConfig`; `finetune_config(cfg)` reads a
    `cfg.train` field of the same name when it exists, else these defaults."""
    gan_weight: float = 0.01  # weight of the generator hinge term
    reae_lr_mult: float = 0.1  # the autoencoder is already good: move it slowly
    dit_lr_mult: float = 1.0
    text_lr_mult: float = 1.0
    disc_lr_mult: float = 1.0
    base_lr_mult: float = 1.0  # the ReAE's LQNet base (`reae.base_net`), on top of reae_lr_mult; 0 freezes it
    disc_channels: tuple[int, ...] = (32, 64, 128)
    lpips_weights: str = ""  # LPIPS safetensors file (see swiftvr_jax/lpips.py); "" = gradient substitute
    lpips_net: str = ""  # "" = the file's metadata


def finetune_config(cfg: Config, **overrides) -> FinetuneConfig:
    """FinetuneConfig from `cfg.train` fields of the same names, then `overrides`."""
    found = {f.name: getattr(cfg.train, f.name) for f in dataclasses.fields(FinetuneConfig)
             if hasattr(cfg.train, f.name)}
    return FinetuneConfig(**{**found, **overrides})


def _adamw(cfg: Config, lr: float) -> optax.GradientTransformation:
    """Trainer's AdamW + warmup-cosine schedule at peak rate `lr` (no clipping: done once outside)."""
    t = cfg.train
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(t.warmup_steps, 1), max(t.steps, t.warmup_steps + 1),
                                                  end_value=lr * 0.01)
    return optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=t.weight_decay)


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in jax.tree.leaves(tree)))


class FinetuneTrainer(ShardedStep):
    """Sharded state and compiled step of the `finetune` stage; same interface as `Trainer`.

    `init(groups)` takes the distill export's groups {'reae', 'dit', 'text'} (or
    `random_groups(seed)`) and a fresh discriminator; `step(state, frozen, batch)` runs one
    G update and one D update and returns (state, metrics).
    """

    stage = "finetune"

    def __init__(self, cfg: Config, mesh, ft: FinetuneConfig | None = None):
        self.cfg = cfg
        self.mesh = mesh
        self.ft = ft or finetune_config(cfg)
        self.trained = GEN_GROUPS
        abstract = nnx.eval_shape(lambda: SwiftVR(cfg, rngs=nnx.Rngs(0)))
        disc = nnx.eval_shape(lambda: VideoDiscriminator(self.ft.disc_channels, rngs=nnx.Rngs(0)))
        self.graphs = {"reae": nnx.graphdef(abstract.reae), "dit": nnx.graphdef(abstract.dit),
                       "disc": nnx.graphdef(disc)}
        groups = param_groups(abstract)
        self.shardings = group_shardings(groups, mesh)
        disc_shardings = shd.tree_shardings(nnx.state(disc, nnx.Param), mesh, prefix="disc.")

        # Perceptual term: LPIPS when a weights file is configured, else the documented substitute.
        try:
            self.lpips = lpips_lib.load_lpips(self.ft.lpips_weights, self.ft.lpips_net or None)
            self.perceptual_note = f"perceptual term: LPIPS-{self.lpips.net} from {self.ft.lpips_weights}"
        except lpips_lib.LPIPSUnavailable:
            self.lpips = None
            self.perceptual_note = ("perceptual term: no LPIPS weights given (train.lpips_weights); "
                                    "using the substitute losses.gradient_loss")
        self.uses_lpips = self.lpips is not None

        t = cfg.train
        mults = {"reae": self.ft.reae_lr_mult, "dit": self.ft.dit_lr_mult, "text": self.ft.text_lr_mult}
        if self.ft.base_lr_mult != 1.0:  # a group of its own only then: the optimizer state keeps its layout
            mults["base"] = self.ft.reae_lr_mult * self.ft.base_lr_mult
        self.tx = optax.chain(
            # A frozen base's gradients are zeroed before the clip, so they do not shrink the others'.
            optax.masked(optax.set_to_zero(), lambda p: jax.tree.map(lambda lab: lab == "base", self._labels(p)))
            if mults.get("base") == 0 else optax.identity(),
            optax.clip_by_global_norm(t.grad_clip),
            optax.multi_transform({k: optax.set_to_zero() if m == 0 else _adamw(cfg, t.lr * m)
                                   for k, m in mults.items()}, self._labels))
        self.disc_tx = optax.chain(optax.clip_by_global_norm(t.grad_clip), _adamw(cfg, t.lr * self.ft.disc_lr_mult))
        if t.grad_accum > 1:
            self.tx = optax.MultiSteps(self.tx, every_k_schedule=t.grad_accum)
            self.disc_tx = optax.MultiSteps(self.disc_tx, every_k_schedule=t.grad_accum)
        gen = {k: groups[k] for k in GEN_GROUPS}
        gen_sh = {k: self.shardings[k] for k in GEN_GROUPS}
        disc_opt = jax.eval_shape(self.disc_tx.init, {"disc": nnx.state(disc, nnx.Param)})
        rep = shd.replicated(mesh)
        self.state_shardings = {
            "params": gen_sh, "opt_state": self._opt_shardings(jax.eval_shape(self.tx.init, gen), GEN_GROUPS),
            "ema": gen_sh, "disc": disc_shardings, "disc_opt_state": self._opt_shardings(disc_opt, ("disc",)),
            "step": rep, "skipped": rep}
        self.frozen_names = ["lpips"] if self.uses_lpips else []
        self.frozen_shardings = {"lpips": jax.tree.map(lambda _: rep, self.lpips.params)} if self.uses_lpips else {}
        self._step = self._init = None

    def _labels(self, params):
        """Each generator leaf is labelled with its group (the multi_transform key); with
        `base_lr_mult != 1` the ReAE's `base_net` leaves form the group 'base'."""
        split = self.ft.base_lr_mult != 1.0

        def label(group, path):
            return "base" if split and group == "reae" and "base_net" in shd._path_str(path).split(".") else group

        return {k: jax.tree_util.tree_map_with_path(lambda path, _, k=k: label(k, path), v) for k, v in params.items()}

    def _opt_shardings(self, opt_abstract, groups):
        """Optimizer moments mirror their parameter's sharding (found by the group name nearest the
        leaf in the path); scalars (counts) are replicated."""
        rep = shd.replicated(self.mesh)

        def one(path, leaf):
            parts = shd._path_str(path).split(".")
            hits = [i for i, p in enumerate(parts) if p in groups]
            if not hits or not getattr(leaf, "shape", ()):
                return rep
            name = ".".join(parts[hits[-1]:])
            return jax.sharding.NamedSharding(self.mesh, shd.spec_for(name, leaf.shape, self.mesh))

        return jax.tree_util.tree_map_with_path(one, opt_abstract)

    # -- state -------------------------------------------------------------------------
    def random_groups(self, seed: int) -> dict[str, Any]:
        """Generator groups of a freshly initialised model, created already sharded."""
        return jax.jit(lambda: param_groups(SwiftVR(self.cfg, rngs=nnx.Rngs(seed))), out_shardings=self.shardings)()

    def init(self, groups: dict[str, Any], seed: int | None = None):
        """(state, frozen) on the mesh: the generator from `groups`, a fresh discriminator from `seed`
        (default `cfg.train.seed`), the LPIPS backbone (if any) replicated in `frozen`."""
        gen = {k: jax.device_put(groups[k], self.shardings[k]) for k in GEN_GROUPS}
        seed = self.cfg.train.seed if seed is None else seed
        if self._init is None:  # compiled once per trainer; the seed is a traced key
            channels = self.ft.disc_channels

            def make(gen, key):
                disc = nnx.state(VideoDiscriminator(channels, rngs=nnx.Rngs(key)), nnx.Param)
                return {"params": gen, "opt_state": self.tx.init(gen), "ema": jax.tree.map(jnp.copy, gen),
                        "disc": disc, "disc_opt_state": self.disc_tx.init({"disc": disc}),
                        "step": jnp.zeros((), jnp.int32), "skipped": jnp.zeros((), jnp.int32)}

            self._init = jax.jit(make, out_shardings=self.state_shardings)
        state = self._init(gen, jax.random.key(seed + 1))
        frozen = {}
        if self.uses_lpips:
            frozen["lpips"] = jax.device_put(self.lpips.params, self.frozen_shardings["lpips"])
        return state, frozen

    # -- losses ------------------------------------------------------------------------
    def generate(self, params, lq, hw):
        """G on a whole clip: LQ [B, T, h, w, 3] -> restored [B, T, H, W, 3] (frame i shows input i - lag)."""
        reae = nnx.merge(self.graphs["reae"], params["reae"])
        dit = nnx.merge(self.graphs["dit"], params["dit"])
        lq = lq.astype(jnp.float32)
        z = _encode_clip(reae, upsample(lq, hw))
        t = jnp.full((z.shape[0],), self.cfg.stream.timestep, jnp.float32)
        z_hq = z - dit(z, t, params["text"])
        b, _, h, w, _ = z_hq.shape
        base = reae.residual_base(lq, hw) if reae.cfg.residual else None
        return reae.decode(z_hq, reae.init_decoder_state(b, h, w), base)[0], reae.frames_to_trim

    def perceptual(self, frozen, pred, target):
        """LPIPS over all frames when loaded, else the gradient substitute."""
        if self.uses_lpips:
            return lpips_lib.lpips_video_loss(self.lpips.net, frozen["lpips"], pred, target)
        return losses.gradient_loss(pred, target)

    def loss(self, params, disc, frozen, batch):
        """(generator loss, ({term: value}, aligned prediction)) for a batch {'hq', 'lq'}."""
        t = self.cfg.train
        hq = batch["hq"].astype(jnp.float32)
        out, lag = self.generate(params, batch["lq"], hq.shape[2:4])
        pred, target = out[:, lag:], hq[:, : hq.shape[1] - lag]
        d = nnx.merge(self.graphs["disc"], disc)
        terms = {"l1": losses.l1(pred, target), "perceptual": self.perceptual(frozen, pred, target),
                 "temporal": losses.temporal_loss(pred, target), "gan_g": hinge_g_loss(d(pred))}
        total = (terms["l1"] + t.perceptual_weight * terms["perceptual"] + t.temporal_weight * terms["temporal"]
                 + self.ft.gan_weight * terms["gan_g"])
        return total, (terms, pred, target)

    def disc_loss(self, disc, real, fake):
        """(hinge D loss, {'d_real', 'd_fake'} mean logits) on aligned real/fake clips."""
        d = nnx.merge(self.graphs["disc"], disc)
        real_logits, fake_logits = d(real), d(fake)
        return hinge_d_loss(real_logits, fake_logits), {"d_real": jnp.mean(real_logits),
                                                        "d_fake": jnp.mean(fake_logits)}

    # -- step --------------------------------------------------------------------------
    def _train_step(self, state, frozen, batch):
        (g_loss, (terms, pred, target)), g_grads = jax.value_and_grad(self.loss, has_aux=True)(
            state["params"], state["disc"], frozen, batch)
        fake = jax.lax.stop_gradient(pred)
        (d_loss, d_terms), d_grads = jax.value_and_grad(self.disc_loss, has_aux=True)(state["disc"], target, fake)
        g_norm, d_norm = _global_norm(g_grads), _global_norm(d_grads)
        ok = jnp.isfinite(g_loss) & jnp.isfinite(g_norm) & jnp.isfinite(d_loss) & jnp.isfinite(d_norm)

        updates, opt_state = self.tx.update(g_grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        d_updates, disc_opt_state = self.disc_tx.update({"disc": d_grads}, state["disc_opt_state"],
                                                        {"disc": state["disc"]})
        disc = optax.apply_updates({"disc": state["disc"]}, d_updates)["disc"]
        ema = update_ema(state["ema"], params, self.cfg.train.ema_decay, state["step"])

        def keep(new, old):  # a non-finite step changes nothing
            return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

        new_state = {"params": keep(params, state["params"]), "opt_state": keep(opt_state, state["opt_state"]),
                     "ema": keep(ema, state["ema"]), "disc": keep(disc, state["disc"]),
                     "disc_opt_state": keep(disc_opt_state, state["disc_opt_state"]),
                     "step": state["step"] + 1, "skipped": state["skipped"] + (~ok).astype(jnp.int32)}
        metrics = {"loss": g_loss, "grad_norm": g_norm, "d_loss": d_loss, "d_grad_norm": d_norm, "finite": ok,
                   "uses_lpips": jnp.asarray(float(self.uses_lpips)), **terms, **d_terms}
        return new_state, metrics

