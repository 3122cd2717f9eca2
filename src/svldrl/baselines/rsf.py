"""RSF-assisted label correction (Liu et al., Expert Systems with Applications 2024), a RECONSTRUCTION.

The authors' code is not public. The paper adds region-scalable fitting (RSF, Li et al., IEEE TIP
2008) to a label-correction method (MTCL or ADELE): image information vets each correction. Our
reading: the base method proposes a corrected label; an RSF level-set evolution on the image,
started from the model's prediction, gives its own region for each foreground class; a proposed
change of a voxel is accepted only where RSF agrees with it (the voxel inside RSF's region of the
new class and outside that of the old one; background needs no region), else the old label stays.

RSF (Li et al. 2008, their ``RSF_v0`` demo), written vectorised in torch for 3D volumes and batches,
phi > 0 inside::

    phi <- phi + dt * ( -delta(phi) (lambda1 e1 - lambda2 e2)            local two-region fit
                        + nu delta(phi) div(grad phi / |grad phi|)          length
                        + mu (lap(phi) - div(grad phi / |grad phi|)) )      distance regularisation
    e_i = K * 1 I^2 - 2 I (K * f_i) + K * f_i^2,   f_1 = K * (H(phi) I) / K * H(phi),  f_2 likewise with 1 - H

K a normalised Gaussian of sigma 3 (radius round(2 sigma), zero padding), H and delta the arctan
Heaviside and its derivative (epsilon 1), central differences with mirrored borders (Neumann). With
several channels the data term is their mean. Parameters (stated in the tables' footnote): sigma 3,
lambda1 = lambda2 = 1, nu = 0.002 (for intensities in [0, 1]: the demo's 0.001-0.003 x 255^2 on
0..255), mu 1, time step 0.1, 200 iterations, phi0 = +-2 from the prediction.

``base`` picks the label-correction method: "adele" (default; needs no oracle) or "mtcl" (oracle
clean-case identities from the noise manifest, as MTCL).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    seg_probabilities,
)
from svldrl.baselines.mtcl import MTCLOptions, MTCLTrainer, corrected_targets
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
    """Separable 3D Gaussian convolution of (B, C, H, W, D), zero padding ("same", as conv2 in the demo)."""
    c, r = volume.shape[1], kernel.numel() // 2
    out = volume
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        weight = kernel.view(shape).expand(c, *shape[1:]).contiguous()  # (C, 1, k, 1, 1) along the axis
        padding = [0, 0, 0]
        padding[axis] = r
        out = F.conv3d(out, weight, padding=tuple(padding), groups=c)
    return out


def heaviside(phi: torch.Tensor, epsilon: float = 1.0) -> torch.Tensor:
    """H_eps(phi) = (1 + (2 / pi) arctan(phi / eps)) / 2."""
    return 0.5 * (1.0 + (2.0 / math.pi) * torch.atan(phi / epsilon))


def dirac(phi: torch.Tensor, epsilon: float = 1.0) -> torch.Tensor:
    """delta_eps(phi) = (eps / pi) / (eps^2 + phi^2), the derivative of ``heaviside``."""
    return (epsilon / math.pi) / (epsilon**2 + phi**2)


def _central_differences(v: torch.Tensor) -> list[torch.Tensor]:
    """d/dH, d/dW, d/dD of (B, 1, H, W, D) by central differences, mirrored borders (zero normal derivative)."""
    p = F.pad(v, (1, 1, 1, 1, 1, 1), mode="reflect")
    core = (slice(None), slice(None), slice(1, -1), slice(1, -1), slice(1, -1))
    grads = []
    for axis in range(3):
        ahead, behind = list(core), list(core)
        ahead[2 + axis], behind[2 + axis] = slice(2, None), slice(None, -2)
        grads.append(0.5 * (p[tuple(ahead)] - p[tuple(behind)]))
    return grads


def curvature(phi: torch.Tensor) -> torch.Tensor:
    """div(grad phi / |grad phi|) of (B, 1, H, W, D)."""
    grads = _central_differences(phi)
    norm = torch.sqrt(sum(g * g for g in grads) + 1e-10)
    return sum(_central_differences(g / norm)[axis] for axis, g in enumerate(grads))


def laplacian(phi: torch.Tensor) -> torch.Tensor:
    """7-point Laplacian of (B, 1, H, W, D) with mirrored borders."""
    p = F.pad(phi, (1, 1, 1, 1, 1, 1), mode="reflect")
    out = -6.0 * phi
    for axis in range(3):
        for start in (0, 2):
            index = [slice(None), slice(None), slice(1, -1), slice(1, -1), slice(1, -1)]
            index[2 + axis] = slice(start, start + phi.shape[2 + axis])
            out = out + p[tuple(index)]
    return out


def rsf_data_force(
    image: torch.Tensor, phi: torch.Tensor, kernel: torch.Tensor, lambda1: float, lambda2: float, epsilon: float
) -> torch.Tensor:
    """(B, 1, ...) ``lambda1 e1 - lambda2 e2``, mean over the image channels (B, C, ...)."""
    h = heaviside(phi, epsilon)  # (B, 1, ...)
    ones = torch.ones_like(phi)
    k_one = gaussian_blur(ones, kernel)  # < 1 near the border (zero padding), as the demo's KONE
    k_h = gaussian_blur(h, kernel)
    k_hi = gaussian_blur(h * image, kernel)  # (B, C, ...)
    k_i = gaussian_blur(image, kernel.to(image.dtype))
    f1 = k_hi / k_h.clamp_min(1e-10)  # local mean inside, per channel
    f2 = (k_i - k_hi) / (k_one - k_h).clamp_min(1e-10)  # local mean outside
    s1 = lambda1 * f1**2 - lambda2 * f2**2
    s2 = lambda1 * f1 - lambda2 * f2
    force = (lambda1 - lambda2) * k_one * image**2 + gaussian_blur(s1, kernel) - 2.0 * image * gaussian_blur(s2, kernel)
    return force.mean(dim=1, keepdim=True)


@dataclass(frozen=True)
class RSFParameters:
    """Parameters of the RSF evolution (Li et al. 2008; nu rescaled to intensities in [0, 1])."""

    sigma: float = 3.0
    lambda1: float = 1.0
    lambda2: float = 1.0
    nu: float = 0.002
    mu: float = 1.0
    time_step: float = 0.1
    iterations: int = 200
    epsilon: float = 1.0
    init_level: float = 2.0


@torch.no_grad()
def rsf_evolve(image: torch.Tensor, phi: torch.Tensor, params: RSFParameters = RSFParameters()) -> torch.Tensor:
    """The level set after ``params.iterations`` RSF steps; phi > 0 is the region.

    Args:
        image: (B, C, H, W, D) intensities in [0, 1].
        phi: (B, 1, H, W, D) initial level set (e.g. ``initial_level_set(mask)``).
    """
    if image.dim() != 5 or phi.dim() != 5 or phi.shape[1] != 1 or phi.shape[0] != image.shape[0]:
        raise ValueError(f"rsf_evolve: expected image (B, C, H, W, D) and phi (B, 1, H, W, D), got "
                         f"{tuple(image.shape)} and {tuple(phi.shape)}")
    if min(image.shape[2:]) < 2:
        raise ValueError(f"rsf_evolve: every side must be >= 2 voxels, got {tuple(image.shape[2:])}")
    p = params
    image, phi = image.float(), phi.float().clone()
    kernel = gaussian_kernel(p.sigma, device=image.device)
    for _ in range(p.iterations):
        kappa = curvature(phi)
        delta = dirac(phi, p.epsilon)
        data = rsf_data_force(image, phi, kernel, p.lambda1, p.lambda2, p.epsilon)
        phi = phi + p.time_step * (-delta * data + p.nu * delta * kappa + p.mu * (laplacian(phi) - kappa))
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
            regions[:, k, c] = (phi[:, 0] > 0) & mask.flatten(1).any(dim=1).view(-1, *([1] * (pred.dim() - 2)))
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

    base: str = option("adele", "label-correction method RSF assists: 'adele' or 'mtcl' (oracle clean cases)")
    rsf_sigma: float = option(3.0, "RSF: sigma of the local Gaussian fit, in voxels")
    rsf_lambda1: float = option(1.0, "RSF: weight of the inside fit")
    rsf_lambda2: float = option(1.0, "RSF: weight of the outside fit")
    rsf_nu: float = option(0.002, "RSF: length weight (intensities in [0, 1])")
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
    FOOTNOTE = ("RSF-assisted: reconstructed (no public code); RSF sigma 3, lambda1 = lambda2 = 1, nu 0.002, "
                "mu 1, time step 0.1, 200 iterations, started from the model's prediction.")

    def __new__(cls, cfg: Any, *args: Any, **kwargs: Any) -> RSFAssistedTrainer:
        if cls is RSFAssistedTrainer:
            cls = RSFAssistedMTCL if base_of(cfg.method_options) == "mtcl" else RSFAssistedADELE
        return super().__new__(cls)

    @classmethod
    def options_class(cls, method_options: Mapping[str, Any]) -> type:
        return RSFMTCLOptions if base_of(method_options) == "mtcl" else RSFADELEOptions

    @classmethod
    def uses_oracle(cls, options: Any) -> bool:
        return options.base == "mtcl" and options.clean_cases == "oracle"

    @classmethod
    def table_label(cls, method_options: Mapping[str, Any] | None = None) -> str:
        """E.g. "RSF-assisted ADELE" or "RSF-assisted MTCL (oracle)"."""
        method_options = method_options or {}
        options = parse_method_options(cls.options_class(method_options), method_options, "rsf-assisted")
        label = f"{cls.NAME} {options.base.upper()}"
        return f"{label} (oracle)" if cls.uses_oracle(options) else label

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

    def noisy_case_losses(
        self, image: torch.Tensor, label: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """MTCL's (L_cons, L_weak, flipped share), the flips kept only where RSF agrees (see ``MTCLTrainer``)."""
        mode = self.labels.mode
        noise = torch.randn(image.shape, generator=self.generator, device=image.device) * self.options.teacher_noise
        limit = 2.0 * self.options.teacher_noise
        with torch.no_grad():
            noisy_in = self.teacher(image + noise.clamp(-limit, limit), heads=("seg",)).seg
            teacher_noisy = seg_probabilities(noisy_in, mode)
            teacher_groups = self.group_log_probs(self.teacher(image, heads=("seg",)).seg).exp()  # (Bn, G, n, ...)
        loss_cons = ((seg_probabilities(logits, mode) - teacher_noisy) ** 2).mean()
        proposed = corrected_targets(label, teacher_groups, mode, self.options.filter_by)
        old = group_indices(label, mode)  # (Bn, G, h, w, d)
        vetted = self.vet(image, old, group_indices(proposed, mode), teacher_groups.argmax(dim=2))
        corrected = _from_indices(vetted, teacher_groups.shape[2], mode, label.dtype)
        changed = (vetted != old).float().mean().item()
        return loss_cons, self.supervised(logits, corrected), changed


def _from_indices(indices: torch.Tensor, n: int, mode: str, dtype: torch.dtype) -> torch.Tensor:
    """(B, n_outputs, ...) batch label from (B, G, ...) class indices."""
    return from_group_targets(F.one_hot(indices.long(), n).movedim(-1, 2).to(dtype), mode)  # via (B, G, n, ...)

