"""Figures for reports: training curves, example slices, and the noise-ratio plot (Fig. 6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from svldrl._io import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def _floats(rows: Sequence[Mapping[str, str]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the rows where ``key`` has a value (validation is not every epoch)."""
    pairs = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")]
    if not pairs:
        return np.array([]), np.array([])
    epochs, values = zip(*pairs, strict=True)
    return np.array(epochs), np.array(values)


def training_curves(logs: Mapping[str, Sequence[Mapping[str, str]]], path: Path) -> Path:
    """Training loss, validation Dice and (for RL methods) mean reward per epoch, one line per method."""
    panels = [
        ("loss", "training loss (each method's total)"),
        ("val_dice", "validation Dice (clean labels)"),
        ("reward", "mean reward"),
    ]
    panels = [(k, t) for k, t in panels if any(_floats(rows, k)[0].size for rows in logs.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    staged = max(logs.values(), key=lambda rows: sum(r.get("stage") in ("transition", "full_rl") for r in rows))
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, (label, rows) in enumerate(logs.items()):
            x, y = _floats(rows, key)
            if x.size:  # a fixed colour per method across panels
                ax.plot(x, y, marker="o" if key == "val_dice" else None, ms=3, label=label, color=f"C{i}")
        _shade_stages(ax, staged)
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def _shade_stages(ax: plt.Axes, rows: Sequence[Mapping[str, str]]) -> None:
    """Grey background for Transition and Full RL epochs (when the log has a stage column)."""
    shades = {"transition": 0.08, "full_rl": 0.16}
    for row in rows:
        alpha = shades.get(row.get("stage", ""))
        if alpha:
            e = int(row["epoch"])
            ax.axvspan(e - 0.5, e + 0.5, color="grey", alpha=alpha, lw=0)


def example_slices(
    image: np.ndarray, clean: np.ndarray, noisy: np.ndarray | None, predictions: Mapping[str, np.ndarray], path: Path
) -> Path:
    """One axial slice through the structure: image, clean label, noisy label, each method's prediction.

    Masks are (H, W, D) foreground masks on the image's grid; the slice with the most clean
    foreground is shown.
    """
    z = int(np.argmax(clean.reshape(-1, clean.shape[-1]).sum(0)))
    panels = [("image", None), ("clean label", clean)]
    if noisy is not None:
        panels.append(("noisy training label", noisy))
    panels += [(f"{name}", mask) for name, mask in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8))
    for ax, (title, mask) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(image[..., z].T, cmap="gray", origin="lower")
        if mask is not None:
            ax.contour(
                mask[..., z].T.astype(float),
                levels=[0.5],
                colors=["lime" if title == "clean label" else "red"],
                linewidths=1.0,
                origin="lower",
            )
            if title != "clean label":
                ax.contour(
                    clean[..., z].T.astype(float),
                    levels=[0.5],
                    colors=["lime"],
                    linewidths=0.6,
                    linestyles="dotted",
                    origin="lower",
                )
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"slice z={z} (green: clean label, red: mask shown)", fontsize=9)
    return _save(fig, path)


def noise_ratio_plot(
    series: Mapping[str, Mapping[float, tuple[float, float]]], path: Path, metric: str = "Dice"
) -> Path:
    """Fig. 6: metric (mean ± std) against the noise ratio, one line per method."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    for label, points in series.items():
        ratios = sorted(points)
        mean = np.array([points[r][0] for r in ratios]) * 100
        std = np.array([points[r][1] for r in ratios]) * 100
        ax.errorbar(np.array(ratios) * 100, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xlabel("noisy training cases [%]")
    ax.set_ylabel(f"{metric} [%]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
