"""Training curves and confusion matrices as PNG files (matplotlib, no display)."""

import csv
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_history(path):
    """A Keras CSVLogger file -> {column: [floats]}."""
    path = pathlib.Path(path)
    if not path.exists():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def plot_curves(histories, path, title="training curves"):
    """Loss and accuracy per epoch; `histories` is [(phase name, {column: values})],
    drawn one after the other on a shared epoch axis."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for name, history in histories:
        if not history:
            continue
        n = len(next(iter(history.values())))
        epochs = np.arange(offset + 1, offset + n + 1)
        for key, ax in (("loss", ax_loss), ("val_loss", ax_loss), ("top1", ax_acc), ("val_top1", ax_acc)):
            if key in history:
                style = "--" if key.startswith("val_") else "-"
                ax.plot(epochs, history[key], style, marker="o", ms=3, label=f"{name} {key}")
        if offset:
            for ax in (ax_loss, ax_acc):
                ax.axvline(offset + 0.5, color="grey", lw=0.8)
        offset += n
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion_matrix(confusion, class_names, path, title="confusion matrix"):
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    confusion = np.asarray(confusion, dtype="float64")
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    n = len(class_names)
    size = min(4 + 0.25 * n, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=max(4, 10 - n // 10))
    ax.set_yticks(range(n), class_names, fontsize=max(4, 10 - n // 10))
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    color = "white" if normalised[i, j] > 0.5 else "black"
                    ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reconstructions(frames, masked, reconstructed, path, title="masked-autoencoder reconstructions",
                         max_frames=8):
    """For each clip, three rows: the original frames, the masked input (hidden
    tubelets black) and the reconstruction; arrays `(clips, T, H, W, 3)` in
    [0, 1] pixel space (`VideoMAEPretrainer.reconstruct` gives them)."""
    clips, num_frames = frames.shape[:2]
    shown = np.unique(np.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().astype(int))
    rows = [(name, images) for c in range(clips)
            for name, images in ((f"clip {c + 1}: original", frames[c]), ("masked input", masked[c]),
                                 ("reconstruction", reconstructed[c]))]
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(1.3 * len(shown) + 1.2, 1.3 * len(rows) + 0.6),
                             squeeze=False)
    for r, (name, images) in enumerate(rows):
        for col, t in enumerate(shown):
            ax = axes[r, col]
            ax.imshow(np.clip(images[t], 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_timeline(result, path, max_classes=8):
    """Class scores over time of a long video (`keras_har.long_video.label_windows`):
    the probability of the classes that are ever among the top ones, one line
    each at the window centres, the top-1 label of every window as a band below."""
    probs = np.asarray(result["probabilities"])
    names = result["class_names"]
    centres = np.array([(w["start"] + w["end"]) / 2 for w in result["windows"]])
    top1 = probs.argmax(axis=1)
    shown = sorted(set(top1.tolist()), key=lambda c: -probs[:, c].max())
    shown += [c for c in np.argsort(-probs.max(axis=0)) if c not in shown]
    shown = shown[:max_classes]
    colors = {c: plt.cm.tab10(i % 10) for i, c in enumerate(shown)}
    fig, (ax, band) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True,
                                   gridspec_kw={"height_ratios": [5, 1]})
    for c in shown:
        ax.plot(centres, probs[:, c], marker="o", markersize=3, color=colors[c], label=names[c])
    ax.set(ylabel="probability", ylim=(0, 1.02),
           title=f"{pathlib.Path(result['video']).name}: {result['window']:g} s windows "
                 f"every {result['stride']:g} s")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    half = min(result["stride"], result["window"]) / 2
    for centre, c in zip(centres, top1):
        band.axvspan(centre - half, centre + half, color=colors.get(c, "lightgray"), alpha=0.6, lw=0)
    band.set(yticks=[], xlabel="time (s)", ylabel="top-1")
    band.set_xlim(0, max(result["duration"], 1e-3))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
