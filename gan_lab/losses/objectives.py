"""Adversarial objectives as pure functions of the discriminator's logits.

Every function returns **per-sample** losses with the shape of its logit inputs (``(B,)`` for one
run, ``(E, B)`` for an ensemble of ``E`` seeds); the module reduces. Logits are the raw outputs of
D (no sigmoid in D). Only stable forms are used; the identities they rest on are

    -log sigmoid(x)      = softplus(-x)
    -log(1 - sigmoid(x)) = softplus(x)

so that nothing takes the log of a sigmoid that has underflowed to 0 (and nothing breaks under
autocast). Notation: ``r = D(x)`` on real samples, ``f = D(G(z))`` on generated ones.

The classes at the bottom are thin wrappers that give each objective a name and the two methods
the module calls, ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits, real_logits)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

# --------------------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------------------


def minimax_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """D's side of the GAN minimax game (Goodfellow et al., 2014), as a loss to minimise.

    ``L_D = -log D(x) - log(1 - D(G(z))) = softplus(-r) + softplus(f)``. The same D loss serves
    the saturating and the non-saturating G losses.

    >>> minimax_d_loss(torch.tensor([0.0]), torch.tensor([0.0]))  # 2 log 2
    tensor([1.3863])
    """
    return F.softplus(-r) + F.softplus(f)


def minimax_g_loss(f: Tensor) -> Tensor:
    """The saturating G loss of the original minimax game: ``L_G = log(1 - D(G(z))) = -softplus(f)``.

    Its gradient ``dL_G/df = -sigmoid(f)`` vanishes when D confidently rejects the fakes
    (``f -> -inf``), which is why it stalls early in training (Goodfellow et al., 2014, sec. 3).

    >>> minimax_g_loss(torch.tensor([0.0]))  # log(1/2)
    tensor([-0.6931])
    """
    return -F.softplus(f)


def non_saturating_g_loss(f: Tensor) -> Tensor:
    """The non-saturating G loss (Goodfellow et al., 2014): ``L_G = -log D(G(z)) = softplus(-f)``.

    Its gradient ``dL_G/df = -sigmoid(-f)`` tends to -1 when D confidently rejects the fakes.

    >>> non_saturating_g_loss(torch.tensor([0.0]))
    tensor([0.6931])
    """
    return F.softplus(-f)


def wasserstein_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """The critic's loss of WGAN (Arjovsky, Chintala & Bottou, 2017): ``L_D = f - r``.

    It estimates -W1(P_r, P_g) only when the critic is 1-Lipschitz: pair it with a gradient
    penalty (WGAN-GP) or weight clipping.

    >>> wasserstein_d_loss(torch.tensor([2.0]), torch.tensor([0.5]))
    tensor([-1.5000])
    """
    return f - r


def wasserstein_g_loss(f: Tensor) -> Tensor:
    """G's WGAN loss: ``L_G = -f``. Also G's loss for the hinge objective."""
    return -f


def hinge_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """The hinge D loss (Lim & Ye, 2017; Miyato et al., 2018): ``relu(1 - r) + relu(1 + f)``.

    >>> hinge_d_loss(torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0]))
    tensor([0.5000, 1.0000])
    """
    return F.relu(1.0 - r) + F.relu(1.0 + f)


def least_squares_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """The LSGAN D loss (Mao et al., 2017) with targets a = 0 (fake), b = 1 (real):
    ``L_D = 1/2 (r - 1)^2 + 1/2 f^2``.

    >>> least_squares_d_loss(torch.tensor([0.0]), torch.tensor([1.0]))
    tensor([1.])
    """
    return 0.5 * (r - 1.0).square() + 0.5 * f.square()


def least_squares_g_loss(f: Tensor) -> Tensor:
    """The LSGAN G loss with target c = 1: ``L_G = 1/2 (f - 1)^2``."""
    return 0.5 * (f - 1.0).square()


def relativistic_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """The relativistic standard GAN D loss, with relativistic pairing (Jolicoeur-Martineau, 2019):
    ``L_D = -log sigmoid(r - f) = softplus(f - r)``; real sample ``i`` is paired with fake ``i``.

    >>> relativistic_d_loss(torch.tensor([1.0]), torch.tensor([1.0]))
    tensor([0.6931])
    """
    return F.softplus(f - r)


def relativistic_g_loss(f: Tensor, r: Tensor) -> Tensor:
    """The relativistic standard GAN G loss: ``L_G = -log sigmoid(f - r) = softplus(r - f)``.

    Unlike every other G loss, it depends on D's logits on real data.
    """
    return F.softplus(r - f)


# --------------------------------------------------------------------------------------------------
# Objectives: a name and the two methods the module calls
# --------------------------------------------------------------------------------------------------


class Objective:
    """An adversarial objective: per-sample D and G losses of D's logits.

    Subclasses set ``name`` and implement :meth:`d_loss` and :meth:`g_loss`. ``needs_real_for_g``
    tells the module to evaluate D on a real batch during the G step (relativistic objectives).
    ``needs_lipschitz`` marks objectives that are meaningless without a Lipschitz constraint on D.
    """

    name: str = ""
    needs_real_for_g: bool = False
    needs_lipschitz: bool = False

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Minimax(Objective):
    """Goodfellow et al. (2014) minimax game with the *saturating* G loss ``log(1 - D(G(z)))``."""

    name = "minimax"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return minimax_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return minimax_g_loss(fake_logits)


class NonSaturating(Objective):
    """Goodfellow et al. (2014) minimax D loss with the non-saturating G loss ``-log D(G(z))``."""

    name = "non_saturating"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return minimax_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return non_saturating_g_loss(fake_logits)


class Wasserstein(Objective):
    """WGAN (Arjovsky et al., 2017); needs a gradient penalty or weight clipping on D."""

    name = "wasserstein"
    needs_lipschitz = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return wasserstein_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return wasserstein_g_loss(fake_logits)


class Hinge(Objective):
    """Hinge loss (Lim & Ye, 2017; Miyato et al., 2018): hinge D loss, G loss ``-D(G(z))``."""

    name = "hinge"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return hinge_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return wasserstein_g_loss(fake_logits)


class LeastSquares(Objective):
    """Least squares GAN (Mao et al., 2017), targets a=0, b=1, c=1."""

    name = "least_squares"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return least_squares_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return least_squares_g_loss(fake_logits)


class Relativistic(Objective):
    """Relativistic standard GAN with relativistic pairing (RSGAN, Jolicoeur-Martineau, 2019)."""

    name = "relativistic"
    needs_real_for_g = True

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return relativistic_d_loss(real_logits, fake_logits)

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("the relativistic G loss needs D's logits on a real batch")
        return relativistic_g_loss(fake_logits, real_logits)
