#!/usr/bin/python3
"""Pictures of a siamese-xlmr run: t-SNE projections of the labeled embeddings before and
after training (normal green, toxic red, as the notebook draws them) and the learning curves
(loss, validation loss and learning rate by epoch, from metrics.jsonl, and the per-epoch
cross-lingual centroid ROC-AUC where the run logged it: train.epoch_auc).

Usage: tools/plot_run.py RUN_DIR [--samples 1500] [--seed 42]
Writes RUN_DIR/tsne_before.png, RUN_DIR/tsne_after.png (when the features exist) and
RUN_DIR/learning_curves.png. Needs Debian's python3-matplotlib, python3-sklearn, python3-h5py
(launch/install-deps.sh installs them).
"""
import argparse
import json
import os
import sys

try:
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: E402
    import numpy as np  # noqa: E402
    from sklearn.manifold import TSNE  # noqa: E402
except ImportError as e:  # one line, not a traceback: which interpreter lacks what
    sys.exit(f"plot_run: {sys.executable} lacks {e.name}: run it with Debian's /usr/bin/python3 "
             "(python3-h5py, python3-matplotlib, python3-sklearn; launch/install-deps.sh)")


def stratified_sample(labels, langs, limit, rng):
    """Up to `limit` rows, keeping each (language, label) group's share."""
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    keys = [f"{l}:{y}" for l, y in zip(langs, labels)]
    chosen = []
    for key in sorted(set(keys)):
        rows = np.array([i for i, k in enumerate(keys) if k == key])
        take = max(1, int(round(limit * len(rows) / n)))
        chosen.extend(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.array(sorted(chosen[:limit]))


def plot_tsne(features_path, out_path, title, samples, seed):
    with h5py.File(features_path, "r") as f:
        x = f["train/embeddings"][()]
        y = f["train/labels"][()]
        langs = [s.decode() if isinstance(s, bytes) else s for s in f["train/langs"][()]]
    rng = np.random.default_rng(seed)
    idx = stratified_sample(y, langs, samples, rng)
    perplexity = max(2.0, min(30.0, (len(idx) - 1) / 3.0))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x[idx])
    fig, ax = plt.subplots(figsize=(7, 6))
    for label, color, name in ((0, "green", "normal"), (1, "red", "toxic")):
        m = y[idx] == label
        ax.scatter(xy[m, 0], xy[m, 1], s=6, c=color, alpha=0.6, label=f"{name} ({m.sum()})")
    ax.set_title(f"{title}: t-SNE of {len(idx)} labeled texts")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def read_metrics(path):
    """The epoch records and the mean learning rate by epoch of a metrics.jsonl. Lines of a
    resumed run's steps appear once (the trainer drops those past the checkpoint)."""
    epochs, lr_by_epoch = [], {}
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line torn by a killed run
            if rec.get("type") == "step" and rec.get("lr") is not None:
                lr_by_epoch.setdefault(rec["epoch"] + 1, []).append(rec["lr"])
            elif rec.get("type") == "epoch":
                epochs.append(rec)
    return epochs, lr_by_epoch


def nan_if_none(values):
    return [v if v is not None else np.nan for v in values]


def plot_curves(metrics_path, out_path):
    records, lr_by_epoch = read_metrics(metrics_path)
    epochs = [r["epoch"] for r in records]
    with_auc = [r for r in records if r.get("centroid_auc_mean") is not None]  # older runs: none
    fig, axes = plt.subplots(1, 3 if with_auc else 2, figsize=(16 if with_auc else 11, 4))
    a, b = axes[0], axes[1]
    if epochs:
        a.plot(epochs, nan_if_none(r.get("loss") for r in records), "o-", label="loss")
        a.plot(epochs, nan_if_none(r.get("val_loss") for r in records), "o-", label="val_loss")
        a.legend()
    else:  # a run stopped before its first validation
        a.text(0.5, 0.5, "no epoch ended yet", ha="center", va="center", transform=a.transAxes)
    a.set_xlabel("epoch")
    a.set_ylabel("DBL loss")
    a.set_title("learning curves")
    lr_epochs = sorted(lr_by_epoch)
    b.plot(lr_epochs, [np.mean(lr_by_epoch[e]) for e in lr_epochs], "o-", color="purple")
    b.set_xlabel("epoch")
    b.set_ylabel("mean learning rate")
    b.set_title("Triangular2 cyclical learning rate")
    if with_auc:
        c = axes[2]
        x = [r["epoch"] for r in with_auc]
        languages = sorted({lang for r in with_auc for lang in (r.get("centroid_auc") or {})})
        for lang in languages:
            c.plot(x, nan_if_none((r.get("centroid_auc") or {}).get(lang) for r in with_auc),
                   ".-", alpha=0.5, linewidth=1, label=lang)
        c.plot(x, [r["centroid_auc_mean"] for r in with_auc], "o-", color="black", linewidth=2,
               label="mean")
        c.set_xlabel("epoch")
        c.set_ylabel("ROC-AUC")
        c.set_title("cross-lingual centroid AUC (held-out language)")
        c.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("run_dir")
    p.add_argument("--samples", type=int, default=1500,
                   help="labeled texts in each t-SNE picture, at least 5 (default 1500)")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    if a.samples < 5:  # t-SNE needs more texts than its perplexity (at least 2)
        p.error(f"--samples {a.samples}: expected at least 5")
    written = []
    for name, title in (("features_before.h5", "before training"), ("features.h5", "after training")):
        path = os.path.join(a.run_dir, name)
        if os.path.exists(path):
            out = os.path.join(a.run_dir, "tsne_" + ("before" if "before" in name else "after") + ".png")
            plot_tsne(path, out, title, a.samples, a.seed)
            written.append(out)
    metrics = os.path.join(a.run_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        out = os.path.join(a.run_dir, "learning_curves.png")
        plot_curves(metrics, out)
        written.append(out)
    if not written:
        sys.exit(f"plot_run: nothing to draw in {a.run_dir} (no features*.h5, no metrics.jsonl)")
    for w in written:
        print(w)


if __name__ == "__main__":
    main()
