"""`loop benchmark gan-transfer`: does a GAN's discriminator help a small-data property model?

The paper's transferability claim, measured: a small CNN with the discriminator's architecture
(its convolutions, pooled features and a linear head) is trained on `n` labelled
microstructures, from random weights (`scratch`) and from the trained discriminator's weights
(`discriminator`), on the same images, split and seed. Two cheap references sit beside them:
ridge regression on the frozen discriminator's pooled features (`probe`) and a straight line in
the volume fraction (`volume_fraction`). The labelled images are 2-D GRF microstructures from the
ranges the GAN was trained on; labels are one effective property from the 2-D homogenization
(FFT) solver. Reported per labelled-set size: test RMSE per arm and seed, and the paired relative
gain of the discriminator start over scratch (`scratch RMSE / discriminator RMSE - 1`) with a
two-sided 95% Student-t interval.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from db import Store
from loop.errors import LoopError

__all__ = ["TRANSFER_ARMS", "run_gan_transfer", "gan_transfer_markdown"]

TRANSFER_ARMS = ("scratch", "discriminator", "probe", "volume_fraction")


def _cnn(disc: Any, pretrained: bool, seed: int) -> Any:
    import copy

    import torch
    from torch import nn

    from surrogates.gan import Discriminator

    class PropertyCNN(nn.Module):
        """Images `n x 1 x S x S` -> `n x 1`: the discriminator's body, pooled, then a line."""

        def __init__(self, body: Discriminator) -> None:
            super().__init__()
            self.body = body
            self.head = nn.Linear(body.config.filters[0], 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body.features(x))

    torch.manual_seed(seed)
    body = copy.deepcopy(disc) if pretrained else Discriminator(disc.config)
    return PropertyCNN(body)


def run_gan_transfer(
    *,
    store: Store,
    gan: str,
    labels: tuple[int, ...] = (50, 200),
    test: int = 200,
    seeds: int = 5,
    epochs: int = 30,
    lr: float = 1e-3,
    quantity: str = "k_xx",
    conductivity: tuple[float, float] = (1.0, 10.0),
    progress: Any = None,
) -> dict[str, Any]:
    """Test RMSE of the four arms for each labelled-set size and seed (module docstring).

    Raises:
        LoopError: Bad sizes, or a quantity the 2-D solver does not compute.
    """
    import torch
    from sklearn.linear_model import RidgeCV

    from loop.gan import gan_fit, load_gan, training_images
    from loop.homogenize import Phase
    from loop.simulators.homogenization import HomogenizationSimulator, quantity_names
    from surrogates.training import TrainConfig, predict, train_network

    if not labels or min(labels) < 4 or test < 4 or seeds < 1 or epochs < 1:
        raise LoopError(
            f"labels {labels}, test {test}, seeds {seeds}, epochs {epochs} are too small",
            "e.g. --labels 50,200 --test 200 --seeds 5 --epochs 30",
        )
    if quantity not in quantity_names(2):
        raise LoopError(f"unknown quantity {quantity!r}", "e.g. k_xx, k_mean, E_x")
    with store.session_scope() as session:
        fit = gan_fit(session=session, name=gan)
        disc = load_gan(session=session, name=gan, part="discriminator")
    data = fit.settings.get("data", {})
    size = int(data.get("size", disc.config.latent * 2 ** (len(disc.config.filters) + 1)))
    vf_range = tuple(data.get("volume_fraction", (0.3, 0.5)))
    length = tuple(data.get("length", (2.0, 6.0)))
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    n_pool = max(labels) * 2 + test
    # a seed the GAN's own training set (seed 0 of train-gan) does not use
    images = training_images(n_pool, size, volume_fraction=vf_range, length=length, seed=12345)
    sim = HomogenizationSimulator(
        dim=2,
        phases=(Phase(1.0, 0.3, conductivity[0]), Phase(10.0, 0.3, conductivity[1])),
        outputs={quantity: quantity},
    )
    y_all = np.array([sim.properties(img)[quantity] for img in images])
    label_s = time.perf_counter() - t0
    say(f"labelled {n_pool} images in {label_s:.0f} s")
    X_all = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) * 2.0 - 1.0
    vf_all = images.reshape(len(images), -1).mean(1)
    test_idx = np.arange(n_pool - test, n_pool)
    y_test = y_all[test_idx]
    with torch.no_grad():
        feats = torch.cat([disc.features(X_all[i : i + 64]) for i in range(0, n_pool, 64)]).numpy()
    dev = torch.device("cpu")
    rows: list[dict[str, Any]] = []
    for n in labels:
        for seed in range(seeds):
            rng = np.random.default_rng([seed, n])
            tr = rng.choice(n_pool - test, size=n, replace=False)
            mu, sd = float(y_all[tr].mean()), float(y_all[tr].std() + 1e-12)
            y_tr = torch.as_tensor((y_all[tr] - mu) / sd, dtype=torch.float32).unsqueeze(1)
            row: dict[str, Any] = {"labels": n, "seed": seed}
            for arm in ("scratch", "discriminator"):
                net = _cnn(disc, arm == "discriminator", seed)
                cfg = TrainConfig(max_epochs=epochs, batch_size=16, lr=lr, weight_decay=0.0)
                t = time.perf_counter()
                train_network(net, X_all[tr], y_tr, cfg, seed=seed, device=dev)
                pred = predict(net, X_all[test_idx], device=dev).numpy()[:, 0] * sd + mu
                row[arm] = float(np.sqrt(np.mean((pred - y_test) ** 2)))
                row[f"{arm}_seconds"] = round(time.perf_counter() - t, 1)
            alphas = np.logspace(-4, 3, 15)
            fmu, fsd = feats[tr].mean(0), feats[tr].std(0) + 1e-8
            probe = RidgeCV(alphas=alphas).fit((feats[tr] - fmu) / fsd, y_all[tr])
            pred = probe.predict((feats[test_idx] - fmu) / fsd)
            row["probe"] = float(np.sqrt(np.mean((pred - y_test) ** 2)))
            line = np.polyfit(vf_all[tr], y_all[tr], 1)
            pred = np.polyval(line, vf_all[test_idx])
            row["volume_fraction"] = float(np.sqrt(np.mean((pred - y_test) ** 2)))
            rows.append(row)
            say(
                f"n={n} seed {seed}: "
                + ", ".join(f"{a} {row[a]:.4f}" for a in TRANSFER_ARMS)
                + f" ({row['scratch_seconds'] + row['discriminator_seconds']:.0f} s)"
            )
    from loop.benchmark.latent_loop import paired_gain

    summary: dict[str, Any] = {}
    for n in labels:
        rs = [r for r in rows if r["labels"] == n]
        summary[str(n)] = {
            **{
                arm: {
                    "rmse_mean": float(np.mean([r[arm] for r in rs])),
                    "rmse_std": float(np.std([r[arm] for r in rs], ddof=1)) if len(rs) > 1 else 0.0,
                }
                for arm in TRANSFER_ARMS
            },
            "discriminator_over_scratch": paired_gain(
                [r["discriminator"] for r in rs], [r["scratch"] for r in rs], maximize=False
            ),
        }
    return {
        "gan": gan,
        "gan_fit": fit.id,
        "image_size": size,
        "quantity": quantity,
        "conductivity": list(conductivity),
        "labels": list(labels),
        "test": test,
        "seeds": seeds,
        "epochs": epochs,
        "lr": lr,
        "y_test_std": float(y_test.std()),
        "interval": "two-sided 95% Student-t over the per-seed relative gains",
        "label_seconds": round(label_s, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "summary": summary,
        "runs": rows,
    }


def gan_transfer_markdown(doc: dict[str, Any], command: str) -> str:
    """Test RMSE per arm and labelled-set size, and the paired gain, as Markdown."""
    lines = [
        f"`{command}`",
        "",
        f"{doc['quantity']} of {doc['image_size']} x {doc['image_size']} GRF microstructures "
        f"(conductivities {doc['conductivity'][0]:g} and {doc['conductivity'][1]:g}); "
        f"{doc['test']} test images (std of {doc['quantity']} {doc['y_test_std']:.3g}), "
        f"{doc['seeds']} seeds, {doc['epochs']} epochs per CNN; {doc['seconds']:.0f} s in all",
        "",
        "| labels | "
        + " | ".join(f"{a} RMSE" for a in TRANSFER_ARMS)
        + " | discriminator vs scratch |",
        "| ---: | " + " | ".join("---:" for _ in TRANSFER_ARMS) + " | --- |",
    ]
    for n, s in doc["summary"].items():
        g = s["discriminator_over_scratch"]
        ci = g["ci95"]
        gain = f"{100 * g['mean']:+.1f}%" + (
            f" ({100 * ci[0]:+.1f}% .. {100 * ci[1]:+.1f}%)" if ci is not None else ""
        )
        lines.append(
            f"| {n} | "
            + " | ".join(
                f"{s[a]['rmse_mean']:.4f} +- {s[a]['rmse_std']:.4f}" for a in TRANSFER_ARMS
            )
            + f" | {gain} |"
        )
    lines += ["", f"Gain: scratch RMSE / discriminator RMSE - 1, {doc['interval']}."]
    return "\n".join(lines) + "\n"
