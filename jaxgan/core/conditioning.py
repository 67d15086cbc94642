"""Class conditioning of D beyond projection: D's class heads and the objective terms on them.

The methods PyTorch-StudioGAN compares (``src/models/big_resnet.py``, ``src/worker.py``,
``src/utils/losses.py`` at 947b35e9) are a head on D's pooled features ``h`` plus terms in
both players' objectives. The head is picked by ``model.d_cond`` (``D_CONDS``); the terms are
penalties by name (``loss.d_penalties`` / ``loss.g_penalties``, ``"name:weight"``), the
weight being StudioGAN's ``cond_lambda``, ``tac_dis_lambda`` or ``tac_gen_lambda``.

``model.d_cond`` (D's head; its outputs, with StudioGAN's layer names):

  projection  ``<embed(y), h>`` added to D's logit: the backbone's own code path, no head
  ac          ``cls = linear2(h)``, C logits, no bias (ACGAN)
  tac         ``cls`` and the twin classifier ``mi_cls = linear_mi(h)``, C logits each (TACGAN)
  adc         ``adc_cls = linear2(h)``, 2C logits: class k real (2k) or fake (2k + 1) (ADCGAN)
  d2dce       ``embed = normalize(linear2(h))`` (``d_embed_dim`` wide, with bias) and
              ``proxy = normalize(embedding(y))`` (ReACGAN)

Terms (CE: mean softmax cross-entropy; y: the batch's labels; weights in brackets are
StudioGAN's CIFAR-10 settings):

  D ``ac``      CE(cls(x_real), y_real)                                       [cond_lambda 1]
  D ``ac_fake`` CE(cls(G(z)), y_fake): the original ACGAN's fake half, which StudioGAN's
                ACGAN-Mod leaves out (Odena et al. 2017, eq. 2)
  G ``ac``      CE(cls(G(z)), y_fake)                                         [cond_lambda 1]
  D ``tac``     CE(mi_cls(G(z)), y_fake): the twin classifier learns the fakes [tac_dis_lambda 1]
  G ``tac``     -CE(mi_cls(G(z)), y_fake)                                   [tac_gen_lambda 1]
  D ``adc``     CE(adc_cls(x_real), 2 y_real) + CE(adc_cls(G(z)), 2 y_fake + 1)  [cond_lambda 1]
  G ``adc``     CE(adc_cls(G(z)), 2 y_fake) - CE(adc_cls(G(z)), 2 y_fake + 1)    [cond_lambda 1]
  D ``d2dce``   D2D-CE(embed, proxy, y) on the reals                         [cond_lambda 0.5]
  G ``d2dce``   D2D-CE(embed, proxy, y) on the fakes                         [cond_lambda 0.5]

TACGAN is ``ac`` + ``tac`` on both players; StudioGAN's ACGAN-Mod is ``ac`` on both. D2D-CE
(Kang et al. 2021, StudioGAN's ``Data2DataCrossEntropyLoss``) with temperature T = 0.5 and
margin m_p = 0.98 (``D2DCE_TEMPERATURE``, ``D2DCE_MARGIN``), for example i with cosine
similarities c_ij = <e_i, e_j> to the other examples j != i of the batch and p_i = <e_i, proxy_i>:

  s_ij = (c_ij + m_p - 1) / T,   M_i = max_{j != i} s_ij (no gradient)
  pos_i = relu((m_p - p_i) / T)
  loss_i = pos_i + log(exp(-pos_i) + sum_{j != i, y_j != y_i} exp(relu(s_ij) - M_i))

the false negatives (other examples of the same class) masked out of the sum; the mean over
the batch. As StudioGAN's DDP run gathers every device's examples, the j run over the global
batch (``lax.all_gather``), so data-parallel runs equal one device.

D computes its head in the same call as its logit and sows the outputs into the ``HEADS``
collection; the adversarial passes of the train step collect them (``TermContext.real_heads``,
``fake_heads``), so no term runs D again. Penalty passes (``TermContext.d``) do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.core.objectives import TermContext
from jaxgan.core.penalties import penalty
from jaxgan.errors import ConfigError
from jaxgan.registry import Registry

Array = jax.Array
HEADS = "heads"  # the collection D sows its head outputs into
D2DCE_TEMPERATURE = 0.5
D2DCE_MARGIN = 0.98
ORTHO = nn.initializers.orthogonal()  # StudioGAN's ``ortho`` init


@dataclasses.dataclass(frozen=True)
class Head:
  """A D conditioning: ``fn(h, y, num_classes, embed_dim) -> outputs`` builds its layers
  inside D's compact call (None: projection, in the backbone); ``outputs`` names them."""

  fn: Callable[[Array, Array, int, int], dict[str, Array]] | None
  outputs: tuple[str, ...] = ()


D_CONDS: Registry[Head] = Registry("discriminator conditioning")
D_CONDS.register("projection")(Head(None))


def _classifier(features: int, name: str) -> nn.Dense:
  return nn.Dense(features, use_bias=False, kernel_init=ORTHO, name=name)


def _normalize(x: Array) -> Array:
  """torch's ``F.normalize(x, dim=1)``: x / max(|x|, 1e-12)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ClassEmbedding(nn.Module):
  """A class embedding stored ``[features, classes]``, as the projection's (so spectral norm
  iterates over torch's axes: ``jaxgan.models.sngan``)."""

  num_classes: int
  features: int

  @nn.compact
  def __call__(self, y: Array) -> Array:
    kernel = self.param("kernel", ORTHO, (self.features, self.num_classes), jnp.float32)
    return jnp.take(kernel, y, axis=1).T


def _ac_head(h, y, num_classes, embed_dim):
  return {"cls": _classifier(num_classes, "linear2")(h)}


def _tac_head(h, y, num_classes, embed_dim):
  return {
    "cls": _classifier(num_classes, "linear2")(h),
    "mi_cls": _classifier(num_classes, "linear_mi")(h),
  }


def _adc_head(h, y, num_classes, embed_dim):
  return {"adc_cls": _classifier(2 * num_classes, "linear2")(h)}


def _d2dce_head(h, y, num_classes, embed_dim):
  embed = nn.Dense(embed_dim, kernel_init=ORTHO, name="linear2")(h)
  proxy = ClassEmbedding(num_classes, embed_dim, name="embedding")(y)
  return {"embed": _normalize(embed), "proxy": _normalize(proxy)}


D_CONDS.register("ac")(Head(_ac_head, ("cls",)))
D_CONDS.register("tac")(Head(_tac_head, ("cls", "mi_cls")))
D_CONDS.register("adc")(Head(_adc_head, ("adc_cls",)))
D_CONDS.register("d2dce")(Head(_d2dce_head, ("embed", "proxy")))


def check_d_cond(d_cond: str, num_classes: int) -> None:
  """For model builders: a known head, and labels for any head but projection (ValueError,
  one line)."""
  if d_cond not in D_CONDS:
    raise ValueError(f"config.model.d_cond: {D_CONDS.unknown_message(d_cond)}")
  if d_cond != "projection" and not num_classes:
    raise ValueError(
      f"config.model.d_cond={d_cond!r} puts a class head on D, which needs labels; set "
      f"config.model.conditional=True."
    )


def apply_head(
  module: nn.Module, d_cond: str, h: Array, y: Array | None, num_classes: int, embed_dim: int
) -> None:
  """Runs D's head ``d_cond`` on the pooled features ``h``, from inside ``module``'s compact
  call (its layers are the module's own), and sows the outputs into ``HEADS``. Projection
  and unconditional D: nothing. Nothing is sown at ``init`` (the outputs are not state)."""
  head = D_CONDS.get(d_cond)
  if head.fn is None or not num_classes:
    return
  outputs = head.fn(h, y, num_classes, embed_dim)
  if module.is_initializing():
    return
  for name, value in outputs.items():
    module.sow(HEADS, name, value, init_fn=lambda: None, reduce_fn=lambda _, new: new)


def head_outputs(discriminator: nn.Module) -> tuple[str, ...]:
  """The head outputs this D sows (none for a D without ``d_cond`` or with projection)."""
  d_cond = getattr(discriminator, "d_cond", None)
  if d_cond is None or not getattr(discriminator, "num_classes", 0):
    return ()
  return D_CONDS.get(d_cond).outputs


# --- the terms -----------------------------------------------------------------------------------

READS: dict[tuple[str, str], tuple[str, ...]] = {}  # (player, term) -> head outputs it reads


def conditioning_term(name: str, player: str, reads: Sequence[str]):
  """Registers ``fn(ctx) -> (loss, metrics)`` as ``player``'s penalty ``name``, a term on
  the head outputs ``reads`` of the adversarial pass."""
  READS[(player, name)] = tuple(reads)
  return penalty(name, player, reads_outputs=True)


def cross_entropy(logits: Array, labels: Array) -> Array:
  """Mean softmax cross-entropy (torch's ``CrossEntropyLoss``)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def _accuracy(logits: Array, labels: Array) -> Array:
  return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))


def d2d_ce(
  embed: Array,
  proxy: Array,
  labels: Array,
  axis_name: str | None = None,
  temperature: float = D2DCE_TEMPERATURE,
  margin: float = D2DCE_MARGIN,
) -> Array:
  """ReACGAN's data-to-data cross-entropy (module docstring), mean over this device's
  examples, each compared with every other example of the global batch."""
  e, p = _normalize(embed.astype(jnp.float32)), _normalize(proxy.astype(jnp.float32))
  n = e.shape[0]
  others, other_labels, offset = e, labels, 0
  if axis_name is not None:
    others = lax.all_gather(e, axis_name, tiled=True)
    other_labels = lax.all_gather(labels, axis_name, tiled=True)
    offset = lax.axis_index(axis_name) * n
  sim = ((e @ others.T) + margin - 1.0) / temperature  # [n, N]
  itself = (jnp.arange(n) + offset)[:, None] == jnp.arange(others.shape[0])[None, :]
  top = lax.stop_gradient(jnp.max(jnp.where(itself, -jnp.inf, sim), axis=1, keepdims=True))
  negatives = (labels[:, None] != other_labels[None, :]) & ~itself
  repelled = jnp.sum(jnp.where(negatives, jnp.exp(jax.nn.relu(sim) - top), 0.0), axis=1)
  attract = jax.nn.relu((margin - jnp.sum(e * p, axis=-1)) / temperature)
  return jnp.mean(attract + jnp.log(jnp.exp(-attract) + repelled))


@conditioning_term("ac", "d", ("cls",))
def _ac_d(ctx: TermContext):
  cls = ctx.real_heads["cls"]
  return cross_entropy(cls, ctx.real_y), {"acc_real": _accuracy(cls, ctx.real_y)}


@conditioning_term("ac_fake", "d", ("cls",))
def _ac_fake_d(ctx: TermContext):
  cls = ctx.fake_heads["cls"]
  return cross_entropy(cls, ctx.fake_y), {"acc_fake": _accuracy(cls, ctx.fake_y)}


@conditioning_term("ac", "g", ("cls",))
def _ac_g(ctx: TermContext):
  cls = ctx.fake_heads["cls"]
  return cross_entropy(cls, ctx.fake_y), {"acc_fake": _accuracy(cls, ctx.fake_y)}


@conditioning_term("tac", "d", ("mi_cls",))
def _tac_d(ctx: TermContext):
  return cross_entropy(ctx.fake_heads["mi_cls"], ctx.fake_y), {}


@conditioning_term("tac", "g", ("mi_cls",))
def _tac_g(ctx: TermContext):
  return -cross_entropy(ctx.fake_heads["mi_cls"], ctx.fake_y), {}


@conditioning_term("adc", "d", ("adc_cls",))
def _adc_d(ctx: TermContext):
  real, fake = ctx.real_heads["adc_cls"], ctx.fake_heads["adc_cls"]
  loss = cross_entropy(real, 2 * ctx.real_y) + cross_entropy(fake, 2 * ctx.fake_y + 1)
  return loss, {"acc_real": _accuracy(real, 2 * ctx.real_y)}


@conditioning_term("adc", "g", ("adc_cls",))
def _adc_g(ctx: TermContext):
  fake = ctx.fake_heads["adc_cls"]
  return cross_entropy(fake, 2 * ctx.fake_y) - cross_entropy(fake, 2 * ctx.fake_y + 1), {}


@conditioning_term("d2dce", "d", ("embed", "proxy"))
def _d2dce_d(ctx: TermContext):
  heads = ctx.real_heads
  return d2d_ce(heads["embed"], heads["proxy"], ctx.real_y, ctx.axis_name), {}


@conditioning_term("d2dce", "g", ("embed", "proxy"))
def _d2dce_g(ctx: TermContext):
  heads = ctx.fake_heads
  return d2d_ce(heads["embed"], heads["proxy"], ctx.fake_y, ctx.axis_name), {}


def check_terms(
  terms: dict[str, Sequence[str]], discriminator: nn.Module, num_classes: int, model: str
) -> None:
  """Refuses, in one line, a conditioning term of an unconditional model or one whose head
  output D does not make. ``terms``: each player's ('d', 'g') term names; ``model``: its name."""
  made = head_outputs(discriminator)
  d_cond = getattr(discriminator, "d_cond", None)
  for player, names in terms.items():
    where = f"config.loss.{player}_penalties"
    for name in names:
      reads = READS.get((player, name))
      if reads is None:
        continue
      if not num_classes:
        raise ConfigError(
          f"{where}: {name!r} is a class-conditioning term and needs labels; set "
          f"config.model.conditional=True or drop it."
        )
      fits = " or ".join(repr(c) for c in D_CONDS if set(reads) <= set(D_CONDS.get(c).outputs))
      if d_cond is None:
        raise ConfigError(
          f"{where}: {name!r} reads a class head of D, and model {model!r} has none; use a "
          f"model with config.model.d_cond (e.g. sngan_resnet, biggan) set to {fits}."
        )
      missing = [r for r in reads if r not in made]
      if missing:
        raise ConfigError(
          f"{where}: {name!r} reads D's {'/'.join(missing)} head, which "
          f"config.model.d_cond={d_cond!r} does not make; set config.model.d_cond to {fits}."
        )
