"""RSF-assisted label correction (Liu et al., Expert Systems with Applications 2024), a RECONSTRUCTION.

The authors' code is not public. The paper adds region-scalable fitting (RSF, Li et al., IEEE TIP
2008) to a label-correction method (MTCL or ADELE): image information vets each correction. Our
reading: the base method proposes a corrected label; an RSF level-set evolution on the image,
started from the model's prediction, gives its own region for each foreground class; a proposed
change of a voxel is accepted only where RSF agrees with it (the voxel inside RSF's region of the
new class and outside that of the old one; background needs no region), else the old label stays.

RSF (Li et al. 2008, their MATLAB ``RSF_v0`` demo; no repository of it), written vectorised in torch
for 3D volumes and batches, phi > 0 inside::

    phi <- phi + dt * ( -delta(phi) (lambda1 e1 - lambda2 e2)            local two-region fit
                        + nu delta(phi) div(grad phi / |grad phi|)          length
                        + mu (lap(phi) - div(grad phi / |grad phi|)) )      distance regularisation
    e_i = K * 1 I^2 - 2 I (K * f_i) + K * f_i^2,   f_1 = K * (H(phi) I) / K * H(phi),  f_2 likewise with 1 - H

K a normalised Gaussian of sigma 3 (radius round(2 sigma), zero padding), H and delta the arctan
Heaviside and its derivative (epsilon 1), central differences with mirrored borders (Neumann). With
several channels the data term is their mean. Parameters (stated in the tables' footnote): sigma 3,
lambda1 = lambda2 = 1, nu = 0.002 x 255^2 (the demo's 0.001-0.003 x 255^2), mu 1, time step 0.1,
200 iterations, phi0 = +-2 from the prediction; images in [0, 1] are scaled to 0..255 first, as
the demo's, so that these values keep their meaning.

``base`` picks the label-correction method: "adele" (default; needs no oracle) or "mtcl" (its clean
cases as MTCL's: the trusted cases when the run has them, else the noise manifest's, an oracle).
RSF acts only on the corrections its base proposes: until ADELE's first correction an RSF-assisted
ADELE run trains exactly as the ADELE run of its seed (tested), and on LA ADELE's start rule has not
fired (docs/results.md, "Session 15"), so RSF is measured there on MTCL's per-batch flips
(``experiments/la/rsf_mtcl.yaml``). With base "mtcl" the log's ``rsf_accepted`` is the share of the
batch's proposed flips RSF kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from svldrl.baselines.adele import ADELEOptions, ADELETrainer, correct_labels
from svldrl.baselines.common import (
    BaselineTrainer,
    from_group_targets,
    group_indices,
    label_from_groups,
    label_groups,
    n_groups_classes,
    option,
    parse_method_options,
    require_trusted,
)
from svldrl.baselines.mtcl import MTCLOptions, MTCLTrainer, clean_source
from svldrl.training import METHODS

BASES = ("adele", "mtcl")


# ----------------------------------------------------------------------------- the RSF level set


def gaussian_kernel(
    sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """(2r + 1,) normalised 1D Gaussian, r = round(2 sigma) (MATLAB's fspecial size in Li's demo)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = int(round(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(volume: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable 3D Gaussian convolution of (B, C, H, W, D) with zero padding ("same", as conv2 in the demo)."""
    return separable_blur(volume, blur_bands(kernel, volume.shape[2:], volume.dtype))


def blur_bands(kernel: torch.Tensor, spatial: Sequence[int], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Per spatial axis, the (n, n) banded Toeplitz matrix of ``kernel``: what ``separable_blur`` multiplies by.

    Made once per evolution (``LocalFit.bands``): rebuilding them at each of the four blurs of an
    RSF step took a third of the blur's time on a 32^3 patch.
    """
    return tuple(_toeplitz(kernel, n).to(dtype) for n in spatial)


def separable_blur(volume: torch.Tensor, bands: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, C, H, W, D) convolved along each axis with its band (``blur_bands``), zero padding.

    Each axis is a matrix product, which runs much faster than a 1D convolution on CPUs and is the
    same operation. The bands are symmetric (the kernel is), so H and W are blurred by multiplying
    from the left on a view, with no transposed copy of the volume (twice as fast at 32^3).
    """
    b, c, h, w, d = volume.shape
    band_h, band_w, band_d = bands
    out = volume @ band_d  # along D: (..., D) @ (D, D)
    out = band_w @ out  # along W: (W, W) @ (..., W, D)
    return (band_h @ out.reshape(b, c, h, w * d)).reshape(b, c, h, w, d)  # along H


def _toeplitz(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n) M with M[i, j] = kernel[j - i + r] inside the band |j - i| <= r, else 0 (kernel symmetric)."""
    r = kernel.numel() // 2
    index = torch.arange(n, device=kernel.device)
    offset = index[None, :] - index[:, None] + r  # (n, n)
    inside = (offset >= 0) & (offset <= 2 * r)
    return kernel[offset.clamp(0, 2 * r)] * inside.to(kernel.dtype)


def heaviside(phi: torch.Tensor, epsilon: float = 1.0) -> torch.Tensor:
    """H_eps(phi) = (1 + (2 / pi) arctan(phi / eps)) / 2."""
    return 0.5 * (1.0 + (2.0 / math.pi) * torch.atan(phi / epsilon))


def dirac(phi: torch.Tensor, epsilon: float = 1.0) -> torch.Tensor:
    """delta_eps(phi) = (eps / pi) / (eps^2 + phi^2), the derivative of ``heaviside``."""
    return (epsilon / math.pi) / (epsilon**2 + phi**2)


def _neighbours(v: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per axis of (B, 1, H, W, D), the next and the previous voxel's values, borders mirrored (Neumann)."""
    p = F.pad(v, (1, 1, 1, 1, 1, 1), mode="reflect")
    pairs = []
    for axis in range(3):
        index = [slice(None), slice(None), slice(1, -1), slice(1, -1), slice(1, -1)]
        n = v.shape[2 + axis]
        index[2 + axis] = slice(2, 2 + n)
        ahead = p[tuple(index)]
        index[2 + axis] = slice(0, n)
        pairs.append((ahead, p[tuple(index)]))
    return pairs


def curvature(phi: torch.Tensor) -> torch.Tensor:
    """div(grad phi / |grad phi|) of (B, 1, H, W, D), central differences."""
    grads = [0.5 * (ahead - behind) for ahead, behind in _neighbours(phi)]
    norm = torch.sqrt(sum(g * g for g in grads) + 1e-10)
    return sum(0.5 * (a - b) for a, b in (_neighbours(g / norm)[axis] for axis, g in enumerate(grads)))


def laplacian(phi: torch.Tensor) -> torch.Tensor:
    """7-point Laplacian of (B, 1, H, W, D), borders mirrored."""
    return sum(ahead + behind for ahead, behind in _neighbours(phi)) - 6.0 * phi


class LocalFit(NamedTuple):
    """What the data term needs that does not change during the evolution."""

    image: torch.Tensor
    """(B, C, ...) intensities (scaled)."""
    bands: tuple[torch.Tensor, ...]
    """The Gaussian's band matrix of each axis (``blur_bands``)."""
    k_one: torch.Tensor
    """(B, 1, ...) K * 1: below 1 near the border (zero padding), the demo's KONE."""
    k_image: torch.Tensor
    """(B, C, ...) K * I."""


def local_fit(image: torch.Tensor, sigma: float) -> LocalFit:
    kernel = gaussian_kernel(sigma, dtype=image.dtype, device=image.device)
    bands = blur_bands(kernel, image.shape[2:], image.dtype)
    k_one = separable_blur(torch.ones_like(image[:, :1]), bands)
    return LocalFit(image, bands, k_one, separable_blur(image, bands))


def rsf_data_force(fit: LocalFit, phi: torch.Tensor, lambda1: float, lambda2: float, epsilon: float) -> torch.Tensor:
    """(B, 1, ...) ``lambda1 e1 - lambda2 e2`` (the demo's dataForce), mean over the image channels."""
    h = heaviside(phi, epsilon)  # (B, 1, ...)
    k_h = separable_blur(h, fit.bands)
    k_hi = separable_blur(h * fit.image, fit.bands)  # (B, C, ...)
    f1 = k_hi / k_h.clamp_min(1e-10)  # local mean inside, per channel
    f2 = (fit.k_image - k_hi) / (fit.k_one - k_h).clamp_min(1e-10)  # local mean outside
    s1 = lambda1 * f1**2 - lambda2 * f2**2
    s2 = lambda1 * f1 - lambda2 * f2
    image = fit.image
    force = (lambda1 - lambda2) * fit.k_one * image**2 + separable_blur(s1, fit.bands)
    force = force - 2.0 * image * separable_blur(s2, fit.bands)
    return force.mean(dim=1, keepdim=True)


@dataclass(frozen=True)
class RSFParameters:
    """Parameters of the RSF evolution (Li et al. 2008, their demo's values)."""

    sigma: float = 3.0
    lambda1: float = 1.0
    lambda2: float = 1.0
    nu: float = 0.002
    """Length weight in units of intensity^2 on the [0, 1] scale (0.002 x 255^2 on the demo's 0..255)."""
    mu: float = 1.0
    time_step: float = 0.1
    iterations: int = 200
    epsilon: float = 1.0
    init_level: float = 2.0
    intensity_scale: float = 255.0
    """Images in [0, 1] are multiplied by this (and nu by its square) so that lambda, mu and the time
    step keep the meaning they have for the demo's 0..255 images; on [0, 1] the data term would be
    255^2 times weaker than the regularisation and the contour would hardly move."""


@torch.no_grad()
def rsf_evolve(image: torch.Tensor, phi: torch.Tensor, params: RSFParameters = RSFParameters()) -> torch.Tensor:
    """The level set after ``params.iterations`` RSF steps; phi > 0 is the region.

    Args:
        image: (B, C, H, W, D) intensities in [0, 1].
        phi: (B, 1, H, W, D) initial level set (e.g. ``initial_level_set(mask)``).
        params: the RSF parameters.
    """
    if image.dim() != 5 or phi.dim() != 5 or phi.shape[1] != 1 or phi.shape[0] != image.shape[0]:
        raise ValueError(f"rsf_evolve: expected image (B, C, H, W, D) and phi (B, 1, H, W, D), got "
                         f"{tuple(image.shape)} and {tuple(phi.shape)}")
    if image.shape[2:] != phi.shape[2:] or min(image.shape[2:]) < 2:
        raise ValueError(f"rsf_evolve: image and phi need the same spatial shape, sides >= 2, got "
                         f"{tuple(image.shape[2:])} and {tuple(phi.shape[2:])}")
    p = params
    fit = local_fit(image.float() * p.intensity_scale, p.sigma)
    nu = p.nu * p.intensity_scale**2
    phi = phi.to(fit.image).clone()
    for _ in range(p.iterations):
        kappa = curvature(phi)
        delta = dirac(phi, p.epsilon)
        data = rsf_data_force(fit, phi, p.lambda1, p.lambda2, p.epsilon)
        phi = phi + p.time_step * (-delta * data + nu * delta * kappa + p.mu * (laplacian(phi) - kappa))
    return phi


def initial_level_set(mask: torch.Tensor, level: float = 2.0) -> torch.Tensor:
    """+level inside ``mask``, -level outside (the demo's binary start, c0 = 2)."""
    return torch.where(mask.bool(), level, -level).to(torch.float32)


def rsf_regions(
    image: torch.Tensor, pred: torch.Tensor, n: int, params: RSFParameters = RSFParameters()
) -> torch.Tensor:
    """(B, G, n, ...) bool: RSF's region of each foreground class, evolved from the predicted class map.

    Classes never predicted in a sample keep an empty region there (no evolution from nothing).

    Args:
        image: (B, C, ...) intensities.
        pred: (B, G, ...) predicted class index per group (class view); class 0 is background.
        n: classes per group.
        params: the RSF parameters.
    """
    b, g = pred.shape[:2]
    regions = torch.zeros(b, g, n, *pred.shape[2:], dtype=torch.bool, device=pred.device)
    for k in range(g):
        for c in range(1, n):
            if not (pred[:, k] == c).any():
                continue
            mask = (pred[:, k] == c)[:, None]  # (B, 1, ...)
            phi = rsf_evolve(image, initial_level_set(mask, params.init_level).to(image.device), params)
            present = mask.flatten(1).any(dim=1).view(-1, *([1] * (pred.dim() - 2)))  # (B, 1, 1, 1)
            regions[:, k, c] = (phi[:, 0] > 0) & present
    return regions


def accept_changes(old: torch.Tensor, proposed: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """(B, G, ...) labels: each proposed change kept only where RSF agrees, else the old class.

    A change from class a to class b is accepted iff the voxel is outside RSF's region of a (when a
    is a foreground class) and inside RSF's region of b (when b is a foreground class).

    Args:
        old, proposed: (B, G, ...) class indices.
        regions: (B, G, n, ...) bool RSF regions per class (index 0 unused).
    """
    in_old = torch.gather(regions, 2, old.unsqueeze(2).long()).squeeze(2) & (old > 0)
    in_new = torch.gather(regions, 2, proposed.unsqueeze(2).long()).squeeze(2) | (proposed == 0)
    agree = ~in_old & in_new
    return torch.where((proposed != old) & agree, proposed, old)


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class RSFFields:
    """The options RSF-assisted adds to its base method's."""

    base: str = option("adele", "label-correction method RSF assists: 'adele' or 'mtcl' (MTCL's clean cases: "
                                "the trusted ones, else the noise manifest's)")
    rsf_sigma: float = option(3.0, "RSF: sigma of the local Gaussian fit, in voxels")
    rsf_lambda1: float = option(1.0, "RSF: weight of the inside fit")
    rsf_lambda2: float = option(1.0, "RSF: weight of the outside fit")
    rsf_nu: float = option(0.002, "RSF: length weight, intensity^2 on [0, 1] (x 255^2 on 0..255)")
    rsf_mu: float = option(1.0, "RSF: distance-regularisation weight")
    rsf_time_step: float = option(0.1, "RSF: time step")
    rsf_iterations: int = option(200, "RSF: iterations")

    def check_rsf(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"method_options.base must be one of {BASES}, got {self.base!r}")
        if self.rsf_sigma <= 0 or self.rsf_iterations < 0 or self.rsf_time_step <= 0:
            raise ValueError("method_options.rsf_sigma and rsf_time_step must be > 0 and rsf_iterations >= 0")
        if min(self.rsf_lambda1, self.rsf_lambda2, self.rsf_nu, self.rsf_mu) < 0:
            raise ValueError("method_options.rsf_lambda1, rsf_lambda2, rsf_nu and rsf_mu must be >= 0")

    def rsf_parameters(self) -> RSFParameters:
        return RSFParameters(self.rsf_sigma, self.rsf_lambda1, self.rsf_lambda2, self.rsf_nu, self.rsf_mu,
                             self.rsf_time_step, self.rsf_iterations)


@dataclass(frozen=True)
class RSFADELEOptions(ADELEOptions, RSFFields):
    """``method_options`` of rsf-assisted with base 'adele': ADELE's options and the RSF ones."""

    def __post_init__(self) -> None:
        ADELEOptions.__post_init__(self)
        self.check_rsf()


@dataclass(frozen=True)
class RSFMTCLOptions(MTCLOptions, RSFFields):
    """``method_options`` of rsf-assisted with base 'mtcl': MTCL's options and the RSF ones."""

    def __post_init__(self) -> None:
        MTCLOptions.__post_init__(self)
        self.check_rsf()


def base_of(method_options: Mapping[str, Any]) -> str:
    base = str(method_options.get("base", "adele")).lower()
    if base not in BASES:
        raise ValueError(f"method_options.base must be one of {BASES}, got {base!r}")
    return base


# ----------------------------------------------------------------------------- trainers


@METHODS.register("rsf-assisted", aliases=("rsf",))
class RSFAssistedTrainer(BaselineTrainer):
    """Label correction by ADELE or MTCL (``method_options.base``), each change vetted by an RSF level set.

    Constructing this class returns the subclass for the configured base (``RSFAssistedADELE`` or
    ``RSFAssistedMTCL``), so that one method name serves both, as the paper applies RSF to both.
    """

    OPTIONS = RSFADELEOptions
    NAME = "RSF-assisted"
    DESCRIPTION = ("RSF-assisted (Liu 2024), a reconstruction (no public code): ADELE's (or MTCL's) label "
                   "corrections kept only where a region-scalable-fitting level set agrees")
    FOOTNOTE = ("RSF-assisted: reconstructed (no public code); RSF sigma 3, lambda1 = lambda2 = 1, nu 0.002 "
                "x 255^2, mu 1, time step 0.1, 200 iterations (images on 0..255), started from the prediction.")

    def __new__(cls, cfg: Any, *args: Any, **kwargs: Any) -> RSFAssistedTrainer:
        if cls is RSFAssistedTrainer:
            cls = RSFAssistedMTCL if base_of(cfg.method_options) == "mtcl" else RSFAssistedADELE
        return super().__new__(cls)

    @classmethod
    def options_class(cls, method_options: Mapping[str, Any]) -> type:
        return RSFMTCLOptions if base_of(method_options) == "mtcl" else RSFADELEOptions

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        options = parse_method_options(cls.options_class(cfg.method_options), cfg.method_options, cfg.method)
        if getattr(options, "clean_cases", None) == "trusted":
            require_trusted(cfg, "method_options.clean_cases=trusted")

    @classmethod
    def uses_oracle(cls, options: Any, trusted: bool = False) -> bool:
        return options.base == "mtcl" and clean_source(options.clean_cases, trusted) == "oracle"

    @classmethod
    def table_label(cls, method_options: Mapping[str, Any] | None = None, trusted: bool = False) -> str:
        """E.g. "RSF-assisted ADELE" or "RSF-assisted MTCL (oracle)"."""
        method_options = method_options or {}
        options = parse_method_options(cls.options_class(method_options), method_options, "rsf-assisted")
        label = f"{cls.NAME} {options.base.upper()}"
        return f"{label} (oracle)" if cls.uses_oracle(options, trusted) else label

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        expected = "mtcl" if isinstance(self, MTCLTrainer) else "adele"
        if self.options.base != expected:
            raise ValueError(f"{type(self).__name__} runs base {expected!r}, not method_options.base "
                             f"{self.options.base!r}")

    def vet(self, image: torch.Tensor, old: torch.Tensor, proposed: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """(B, G, ...) the proposed class indices where RSF (started from ``pred``) agrees, else ``old``."""
        if not (proposed != old).any():
            return old
        n = n_groups_classes(self.labels)[1]
        return accept_changes(old, proposed, rsf_regions(image, pred, n, self.options.rsf_parameters()))


class RSFAssistedADELE(RSFAssistedTrainer, ADELETrainer):
    """ADELE whose label corrections (whole volumes, at epoch ends) are vetted by RSF."""

    OPTIONS = RSFADELEOptions

    def correct_training_labels(self) -> None:
        """ADELE's correction of every training label, each change kept only where RSF agrees."""
        correcting = self.start_epoch >= 0
        cases = []
        for case in self.train_cases:
            probs = self.multiscale_probs(case.image)  # (G, n, H, W, D)
            groups = label_groups(case.label, self.labels.mode)  # (G, H, W, D)
            proposed = correct_labels(groups, probs, correcting, self.options.tau_fg, self.options.tau_bg)
            image = torch.as_tensor(case.image, dtype=torch.float32, device=self.device)[None]  # (1, C, H, W, D)
            as_tensor = [torch.as_tensor(a, device=self.device)[None] for a in (groups, proposed, probs.argmax(axis=1))]
            vetted = self.vet(image, *as_tensor)[0].cpu().numpy()
            cases.append(case.with_label(label_from_groups(vetted, self.labels.mode)))
        self.set_training_labels(cases)


class RSFAssistedMTCL(RSFAssistedTrainer, MTCLTrainer):
    """MTCL whose confident-learning flips (per batch, noisy cases) are vetted by RSF on the image patch."""

    OPTIONS = RSFMTCLOptions
    TRAIN_SCALARS = (*MTCLTrainer.TRAIN_SCALARS, "rsf_accepted")

    def correct_noisy_labels(
        self, image: torch.Tensor, label: torch.Tensor, teacher_groups: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(Bn, n_outputs, ...) MTCL's confident-learning flips, each kept only where RSF (from the teacher's
        prediction) agrees; and ``rsf_accepted``, the share of the proposed flips RSF kept (absent when
        MTCL proposed none). With ``flipped_fraction`` (after the vetting) it shows whether RSF lets
        MTCL's corrections through or stops them."""
        mode = self.labels.mode
        proposed, _ = super().correct_noisy_labels(image, label, teacher_groups)
        old = group_indices(label, mode)  # (Bn, G, h, w, d)
        proposed_groups = group_indices(proposed, mode)
        vetted = self.vet(image, old, proposed_groups, teacher_groups.argmax(dim=2))
        n_proposed = int((proposed_groups != old).sum())
        accepted = {"rsf_accepted": float((vetted != old).sum()) / n_proposed} if n_proposed else {}
        onehot = F.one_hot(vetted.long(), teacher_groups.shape[2]).movedim(-1, 2).to(label.dtype)  # (Bn, G, n, ...)
        return from_group_targets(onehot, mode), accepted
