"""Neural surrogate families: deep ensembles and MC dropout, over plain inputs or ElemNet.

| name | network | uncertainty |
|---|---|---|
| `ensemble` | MLP on inputs scaled to the unit cube | `members` independently initialised nets |
| `mc-dropout` | MLP with dropout | one net, `samples` fixed dropout masks |
| `elemnet-ensemble` | ElemNet on element fractions | `members` ElemNets |
| `elemnet-dropout` | ElemNet with its published dropout | one ElemNet, `samples` masks |
| `cgcnn-ensemble` | CGCNN on a pool's crystal graphs | `members` CGCNNs |
| `cgcnn-mcdropout` | CGCNN, dropout before the output | one CGCNN, `samples` masks |

ElemNet families read element-fraction columns named by element symbol (a composition campaign's
columns, or all 86 of `ELEMNET_ELEMENTS`). CGCNN families read one column, the candidate's
index in a `[structures]` pool, whose crystal graphs the engine gives them with
`set_structures` (a `GraphStore`). Every fit:

1. standardizes the targets and trains each network with `surrogates.training.train_network`;
2. keeps rows the networks did not train on for held-out predictions: with fewer than
   `CAL_MIN_ROWS` rows, ensemble members are cross-fitted (member `k` validates on fold `k`, so
   every row gets an out-of-fold prediction) and MC dropout holds out a validation split; with
   more, a calibration split of `cal_fraction` is set aside that no network sees;
3. recalibrates the spread with one factor per output fitted on the held-out rows (at least
   `MIN_CAL_POINTS`): by default (`calibrate = "curve"`) the factor with the least
   miscalibration area, or (`"rms"`) `s = sqrt(mean(((y - mu) / sigma)^2))`; both are stored
   with the fit. Errors of composition models are heavy-tailed, and the rms factor then widens
   every interval to cover the tails (OQMD, ElemNet ensemble: miscalibration area 0.19 with
   it, 0.03 with the curve factor, 0.10 raw);
4. with at least `ERROR_MODEL_MIN_ROWS` calibration rows (and `error_model` "auto", the
   default, or "trees"; "none" turns it off), fits gradient-boosted trees there that predict
   the size of the ensemble's errors from the inputs and the ensemble's own summary
   (`surrogates.error_model`); they then set the predictive spread, calibrated by their own
   factor fitted on their out-of-fold predictions, and the held-out predictions the fit stores
   are those out-of-fold ones. The networks' own factor is still fitted and stored, and without
   enough rows the fit keeps the networks' spread and says why in its info
   (`error_model_skipped`).

Noise: with `loss = "laplace_nll"` (or `"gaussian_nll"`) every network also predicts a log
scale per target and trains on the likelihood, so the predictive spread is the members'
disagreement plus the noise they predict (heteroscedastic deep ensembles, Lakshminarayanan et
al. 2017; MC dropout with learned noise, Kendall and Gal 2017). Held-out statistics and the
calibration factor use that predictive spread; acquisition functions see the members' means.
With `weigh_noise = true`, calibration of such networks first weighs the noise against the
members' disagreement (one weight per output, `noise_weights`, stored as `noise_scale`), then
fits the overall factor. It is off by default: on OQMD it did not rank errors better than the
weight 1 (figures in `docs/benchmarks.md`).

Warm start: given an earlier fit's state (`warm_start`), the networks start from its weights; the
output layer is first refitted by least squares to the new targets (which also turns a model
pretrained on another property or sign into a good start), then training continues with a short
patience. That is how a refit after a few new measurements costs seconds, and how a pretrained
ElemNet is fine-tuned on a campaign's few measurements.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import torch

from surrogates.base import FitResult, Surrogate, UnknownSurrogateError, register_surrogate
from surrogates.cgcnn import CGCNNConfig, CGCNNOnIndices
from surrogates.ensemble import DeepEnsembleModel, InputMap, MCDropoutModel
from surrogates.error_model import (
    ERROR_MODEL_MIN_ROWS,
    ERROR_MODELS,
    ErrorModel,
    error_features,
    fit_error_model,
)
from surrogates.featurizers import ELEMNET_ELEMENTS, CompositionError, element_map
from surrogates.nets import MLP, MLPConfig, elemnet_config
from surrogates.training import (
    LOSSES,
    NOISE_LOSSES,
    SCHEDULES,
    TrainConfig,
    TrainReport,
    pick_device,
    predict,
    train_network,
)
from surrogates.voxel_cnn import VoxelCNNConfig, VoxelCNNOnIndices

__all__ = [
    "NeuralSurrogate",
    "DeepEnsemble",
    "MCDropout",
    "ElemNetEnsemble",
    "ElemNetDropout",
    "CGCNNEnsemble",
    "CGCNNDropout",
    "SurrogateInputError",
    "CAL_MIN_ROWS",
    "MIN_CAL_POINTS",
]

#: From this many rows on, a calibration split is held out instead of cross-fitting.
CAL_MIN_ROWS = 1000
#: Fewer held-out points than this leave the spread uncalibrated (factor 1).
MIN_CAL_POINTS = 10
#: Bounds on the calibration factor (a factor outside is a symptom, not a calibration).
SCALE_LIMITS = (0.01, 1000.0)
#: Bounds on the weight of the predicted noise against the members' spread.
NOISE_WEIGHT_LIMITS = (0.1, 10.0)
#: Total log-likelihood within which weights count as equally good (the one nearest 1 wins).
NOISE_WEIGHT_TOLERANCE = 1.0
#: Rows with which warm-start head refits use least squares (fewer: keep the old head).
HEAD_REFIT_MIN = 5

_COMMON: dict[str, Any] = {
    "epochs": 300,
    "patience": 30,
    "warm_patience": 10,
    "time_budget": None,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "loss": "mse",
    "val_fraction": 0.1,
    "cal_fraction": 0.1,
    "calibrate": "curve",
    "weigh_noise": False,
    "error_model": "auto",
    "amp": True,
    "schedule": "plateau",
    "optimizer": "adamw",
    "momentum": 0.9,
    "pretrained": None,
}


class SurrogateInputError(UnknownSurrogateError):
    """The data do not suit the surrogate (for example ElemNet on non-composition columns)."""


def _check_options(kind: str, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(defaults)
    if unknown:
        raise UnknownSurrogateError(
            f"unknown option(s) {sorted(unknown)} for surrogate '{kind}'; known: "
            f"{', '.join(sorted(defaults))}"
        )
    out = dict(defaults)
    out.update(options)

    def num(key: str, cast: type, lo: float, hi: float = math.inf) -> None:
        v = out[key]
        if v is None and key == "time_budget":
            return
        try:
            v = cast(v)
        except (TypeError, ValueError):
            raise UnknownSurrogateError(
                f"option {key} of surrogate '{kind}' must be a number, got {out[key]!r}"
            ) from None
        if not (lo <= v <= hi):
            raise UnknownSurrogateError(
                f"option {key} of surrogate '{kind}' must be in [{lo:g}, {hi:g}], got {v}"
            )
        out[key] = v

    for key in ("epochs", "patience", "warm_patience", "batch_size"):
        num(key, int, 1)
    num("lr", float, 1e-8, 10.0)
    num("weight_decay", float, 0.0, 10.0)
    num("val_fraction", float, 0.01, 0.5)
    num("cal_fraction", float, 0.01, 0.5)
    num("time_budget", float, 1e-3)
    if "members" in out:
        num("members", int, 1, 1000)
    if "samples" in out:
        num("samples", int, 2, 10000)
    if "dropout" in out:
        num("dropout", float, 0.0, 0.95)
    for key in ("embed", "convs", "width"):
        if key in out:
            num(key, int, 1, 4096)
    if out.get("dropout_scale") is not None:
        # the largest published ElemNet rate is 0.3: keep every rate at or below 0.9
        num("dropout_scale", float, 0.0, 3.0)
    num("momentum", float, 0.0, 0.999)
    if out["optimizer"] not in ("adamw", "sgd"):
        raise UnknownSurrogateError(
            f"option optimizer of surrogate '{kind}' must be 'adamw' or 'sgd' (with momentum), "
            f"got {out['optimizer']!r}"
        )
    if out["schedule"] not in SCHEDULES:
        raise UnknownSurrogateError(
            f"option schedule of surrogate '{kind}' must be 'plateau', 'budget' (linear decay "
            f"over time_budget) or 'linear' (over epochs), got {out['schedule']!r}"
        )
    if out["schedule"] == "budget" and out["time_budget"] is None:
        raise UnknownSurrogateError(
            f"option schedule = 'budget' of surrogate '{kind}' needs time_budget (seconds)"
        )
    cal = out["calibrate"]
    cal = {True: "rms", False: "none"}.get(cal, cal) if isinstance(cal, bool) else cal
    if cal not in ("rms", "curve", "none"):
        raise UnknownSurrogateError(
            f"option calibrate of surrogate '{kind}' must be 'rms', 'curve' or 'none' (true "
            f"means 'rms', false 'none'), got {out['calibrate']!r}"
        )
    out["calibrate"] = cal
    if not isinstance(out["weigh_noise"], bool):
        raise UnknownSurrogateError(
            f"option weigh_noise of surrogate '{kind}' must be true or false, got "
            f"{out['weigh_noise']!r}"
        )
    if out["error_model"] not in ERROR_MODELS:
        raise UnknownSurrogateError(
            f"option error_model of surrogate '{kind}' must be one of {', '.join(ERROR_MODELS)} "
            f"('trees': gradient-boosted trees fitted on the calibration rows set the "
            f"predictive spread; 'auto': trees when there are {ERROR_MODEL_MIN_ROWS} "
            f"calibration rows or more; 'none': the networks' own spread), got "
            f"{out['error_model']!r}"
        )
    if out["loss"] not in LOSSES:
        raise UnknownSurrogateError(
            f"option loss of surrogate '{kind}' must be one of {', '.join(LOSSES)} (the *_nll "
            f"losses also predict each point's noise), got {out['loss']!r}"
        )
    if "size" in out and out["size"] not in ("full", "small", "tiny"):
        raise UnknownSurrogateError(
            f"option size of surrogate '{kind}' must be full, small or tiny, got {out['size']!r}"
        )
    if "channels" in out:
        ch = out["channels"]
        if (
            not isinstance(ch, (list, tuple))
            or not ch
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in ch)
        ):
            raise UnknownSurrogateError(
                f"option channels of surrogate '{kind}' must be a list of filter counts such "
                f"as [16, 32, 64, 64, 128], got {ch!r}"
            )
        out["channels"] = [int(c) for c in ch]
    if "hidden" in out:
        h = out["hidden"]
        if isinstance(h, int):
            h = [h]
        if (
            not isinstance(h, (list, tuple))
            or not h
            or not all(isinstance(w, int) and w >= 1 for w in h)
        ):
            raise UnknownSurrogateError(
                f"option hidden of surrogate '{kind}' must be a list of layer widths such as "
                f"[128, 128], got {out['hidden']!r}"
            )
        out["hidden"] = [int(w) for w in h]
    if out["pretrained"] is not None and not isinstance(out["pretrained"], str):
        raise UnknownSurrogateError(
            f"option pretrained of surrogate '{kind}' must be the name of a model stored with "
            f"`loop surrogate pretrain`, got {out['pretrained']!r}"
        )
    return out


class NeuralSurrogate(Surrogate):
    """Shared fit logic of the network families (see the module docstring)."""

    method: str = ""  # "ensemble" or "dropout"
    elemnet: bool = False
    #: ElemNet dropout multiplier at the narrow sizes (`small`, `tiny`) when the option is unset
    narrow_dropout_scale: float = 1.0
    #: whether the error model reads the network inputs (not for inputs that are row indices)
    error_model_inputs: bool = True
    defaults: dict[str, Any] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = _check_options(type(self).kind or "?", options, self.defaults)

    @property
    def noise(self) -> str | None:
        """The noise distribution the networks predict (`gaussian`/`laplace`), or `None`."""
        return NOISE_LOSSES.get(self.opts["loss"])

    def _out_width(self, m: int) -> int:
        """Network outputs for `m` targets: a mean each, and a log scale each with noise."""
        return 2 * m if self.noise else m

    # -- pieces the families differ in ---------------------------------------------------------
    def _input_map(self, d: int, bounds: torch.Tensor, input_names: list[str] | None) -> InputMap:
        if not self.elemnet:
            return InputMap.unit_cube(bounds)
        names = input_names
        if names is None:
            if d != len(ELEMNET_ELEMENTS):
                raise SurrogateInputError(
                    f"surrogate '{self.kind}' needs element-fraction inputs named by element "
                    f"symbol; got {d} unnamed columns"
                )
            names = list(ELEMNET_ELEMENTS)
        try:
            return InputMap.scatter(element_map(names))
        except CompositionError as err:
            raise SurrogateInputError(
                f"surrogate '{self.kind}' reads element fractions only, but input column "
                f"{err.formula!r} is not an element symbol; use a composition design space "
                "(every input an element fraction) or another surrogate such as 'ensemble'"
            ) from None

    def _dropout_scale(self) -> float:
        """The ElemNet dropout multiplier: the option, else the family's default for the size."""
        scale = self.opts.get("dropout_scale")
        if scale is not None:
            return float(scale)
        return 1.0 if self.opts["size"] == "full" else self.narrow_dropout_scale

    def _arch(self, in_dim: int, m: int) -> Any:
        if self.elemnet:
            return elemnet_config(
                self.opts["size"],
                in_dim=in_dim,
                out_dim=self._out_width(m),
                dropout_scale=self._dropout_scale(),
            )
        hidden = self.opts["hidden"]
        p = float(self.opts.get("dropout", 0.0)) if self.method == "dropout" else 0.0
        return MLPConfig(
            in_dim=in_dim,
            widths=tuple(hidden),
            dropouts=tuple(p for _ in hidden),
            out_dim=self._out_width(m),
        )

    def _warm_arch(self, arch: Any, warm: dict[str, Any], m: int) -> Any:
        """The warm networks' widths with this fit's dropout (dropout holds no weights, so a
        pretrained ensemble without dropout can start an MC-dropout fit) and outputs."""
        warm_arch = MLPConfig.from_dict(warm["arch"])
        same_depth = len(warm_arch.widths) == len(arch.widths)
        return replace(
            warm_arch,
            out_dim=self._out_width(m),
            dropouts=arch.dropouts if same_depth else warm_arch.dropouts,
        )

    def _arch_from_dict(self, d: dict[str, Any]) -> Any:
        return MLPConfig.from_dict(d)

    def _make_net(self, arch: Any) -> Any:
        return MLP(arch)

    def _has_dropout(self, arch: Any) -> bool:
        return any(p > 0 for p in arch.dropouts)

    def _load_warm(self, net: Any, sd: dict[str, torch.Tensor]) -> None:
        net.load_layer_weights(sd)

    def _train_config(self, *, warm: bool, budget: float | None) -> TrainConfig:
        o = self.opts
        return TrainConfig(
            max_epochs=o["epochs"],
            patience=o["warm_patience"] if warm else o["patience"],
            time_budget=budget,
            batch_size=o["batch_size"],
            lr=o["lr"],
            weight_decay=o["weight_decay"],
            loss=o["loss"],
            amp=bool(o["amp"]),
            schedule=o["schedule"],
            optimizer=o["optimizer"],
            momentum=o["momentum"],
        )

    # -- fit ---------------------------------------------------------------------------------
    def fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        *,
        bounds: torch.Tensor,
        Yvar: torch.Tensor | None = None,
        seed: int = 0,
        state: dict[str, Any] | None = None,
        warm_start: dict[str, Any] | None = None,
        input_names: list[str] | None = None,
        device: torch.device | str | None = None,
    ) -> FitResult:
        del Yvar  # networks fit the noise level into their spread; known noise is not used
        t0 = time.perf_counter()
        try:
            dev = pick_device(device)
        except ValueError as err:
            raise SurrogateInputError(str(err)) from None
        if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
            raise SurrogateInputError(
                f"expected n x d inputs and n x m outputs, got {tuple(X.shape)} and "
                f"{tuple(Y.shape)}"
            )
        n, d = X.shape
        m = Y.shape[1]
        if n < 2:
            raise SurrogateInputError(
                f"surrogate '{self.kind}' needs at least 2 measurements, got {n}"
            )
        imap = self._input_map(d, bounds, input_names).to(dev)
        if state is not None:
            return self._rebuild(state, imap, dev, t0)
        H = imap(X.to(dev)).float()
        Yf = Y.to(dev).float()
        y_mean = Yf.mean(0)
        y_std = Yf.std(0) if n > 1 else torch.ones(m, device=dev)
        y_std = torch.where(y_std > 1e-8, y_std, torch.ones_like(y_std))
        Ys = (Yf - y_mean) / y_std

        warm = self._usable_warm(warm_start, imap.out_dim, m)
        arch = self._arch(imap.out_dim, m)
        if warm is not None:
            arch = self._warm_arch(arch, warm, m)
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=gen)
        cal_idx = torch.zeros(0, dtype=torch.long)
        train_idx = perm
        if n >= CAL_MIN_ROWS:
            n_cal = min(max(MIN_CAL_POINTS, int(round(self.opts["cal_fraction"] * n))), 10000)
            cal_idx, train_idx = perm[:n_cal], perm[n_cal:]

        budget = self.opts["time_budget"]
        model, reports, held = self._train(
            H, Ys, train_idx, cal_idx, arch, warm, seed, dev, budget, imap, y_mean, y_std, gen
        )
        # held-out predictions (in target units) and the calibration factor
        held_idx, mu, sd, nv = held
        scale = torch.ones(m)
        nscale = torch.ones(m)
        calibrated = False
        factors: dict[str, torch.Tensor] = {}
        enough = held_idx.numel() >= MIN_CAL_POINTS
        if enough and self.noise and self.opts["calibrate"] != "none" and self.opts["weigh_noise"]:
            # the weight of the predicted noise against the members' spread first
            y_held = Y[held_idx].float().cpu()
            nscale = noise_weights(y_held, mu, (sd.pow(2) - nv).clamp_min(0), nv)
            model.set_noise_scale(nscale.to(dev))
            sd = (sd.pow(2) + (nscale.pow(2) - 1) * nv).clamp_min(0).sqrt()
        if enough:
            factors = calibration_factors(Y[held_idx].float().cpu(), mu, sd)
        if self.opts["calibrate"] != "none" and factors:
            scale = factors[self.opts["calibrate"]]
            calibrated = True
        model.set_sigma_scale(scale.to(dev))
        sd = sd * scale
        em_info: dict[str, Any] = {"error_model": "none"}
        if self.opts["error_model"] != "none":
            # a dedicated calibration split only: cross-fitted rows were seen by other members
            if cal_idx.numel() >= ERROR_MODEL_MIN_ROWS:
                assert torch.equal(held_idx.cpu(), cal_idx.cpu())
                sd, em_info = self._error_model(model, H[cal_idx], Y[cal_idx], mu, seed)
            else:
                em_info["error_model_skipped"] = (
                    f"{int(cal_idx.numel())} calibration rows, needs {ERROR_MODEL_MIN_ROWS} "
                    f"(a calibration split is held out from {CAL_MIN_ROWS} rows on, "
                    f"cal_fraction {self.opts['cal_fraction']:g} of them)"
                )
        info = {
            "fit_seconds": round(time.perf_counter() - t0, 4),
            "n_train": int(n),
            "device": str(dev),
            "sigma_scale": [round(float(s), 6) for s in scale] if m > 1 else float(scale[0]),
            "calibrated": calibrated,
            "calibration": self.opts["calibrate"] if calibrated else "none",
            "sigma_scales": {
                k: [round(float(v), 6) for v in f] if m > 1 else round(float(f[0]), 6)
                for k, f in factors.items()
            },
            "n_heldout": int(held_idx.numel()),
            "noise": self.noise,
            "noise_scale": [round(float(s), 6) for s in nscale] if m > 1 else float(nscale[0]),
            **em_info,
            "warm_start": warm is not None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "epochs": [r.epochs for r in reports],
            "stopped": sorted({r.stopped for r in reports}),
            "train_seconds": round(sum(r.seconds for r in reports), 4),
            "arch": arch.to_dict(),
        }
        st = self._state(model, arch, imap, y_mean, y_std, scale, seed)
        heldout_index = (
            None
            if held_idx.numel() == n and bool((held_idx == torch.arange(n)).all())
            else held_idx
        )
        return FitResult(
            model=model,
            heldout_mean=mu.double(),
            heldout_std=sd.double(),
            state=st,
            info=info,
            heldout_index=heldout_index,
        )

    def _error_model(
        self, model: Any, H: torch.Tensor, Y: torch.Tensor, mu: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Fit the error model on the `k` calibration rows (features `H`, truths `Y`, the
        ensemble's means `mu` there) and give it to `model`.

        Returns:
            The `k x m` out-of-fold calibrated standard deviations at those rows (target units,
            what the fit stores as held-out predictions) and the fit-info entries.
        """
        t0 = time.perf_counter()
        m = Y.shape[1]
        y_std = model.y_std.cpu()
        with torch.no_grad():
            raw = torch.cat(
                [model._members(H[s : s + 8192]).cpu() for s in range(0, H.shape[0], 8192)], -2
            )
        feats = error_features(H.cpu(), raw, m, model.noise, self.error_model_inputs)
        abs_err = (Y.float().cpu() - mu).abs() / y_std
        em, oof = fit_error_model(
            feats, abs_err, noise=model.noise, use_inputs=self.error_model_inputs, seed=seed
        )
        sd = oof * y_std
        factors = calibration_factors(Y.float().cpu(), mu, sd)
        cal = self.opts["calibrate"]
        em.scale = factors[cal].float() if cal != "none" else torch.ones(m)
        model.set_error_model(em)
        info = {
            "error_model": "trees",
            "error_model_rows": int(H.shape[0]),
            "error_model_scale": [round(float(v), 6) for v in em.scale]
            if m > 1
            else round(float(em.scale[0]), 6),
            "error_model_scales": {
                k: [round(float(v), 6) for v in f] if m > 1 else round(float(f[0]), 6)
                for k, f in factors.items()
            },
            "error_model_seconds": round(time.perf_counter() - t0, 4),
        }
        return sd * em.scale, info

    def _usable_warm(
        self, warm: dict[str, Any] | None, in_dim: int, m: int
    ) -> dict[str, Any] | None:
        """The warm-start state when its networks fit these inputs, else `None`."""
        if warm is None or "arch" not in warm:
            return None
        arch = warm["arch"]
        if int(arch.get("in_dim", -1)) != in_dim:
            return None
        if not (warm.get("members") or warm.get("net")):
            return None
        return warm

    def _new_net(
        self,
        arch: MLPConfig,
        warm: dict[str, Any] | None,
        k: int,
        H: torch.Tensor,
        Ys: torch.Tensor,
        fit_idx: torch.Tensor,
        seed: int,
        dev: torch.device,
    ) -> MLP:
        torch.manual_seed(seed)
        net = self._make_net(arch).to(dev)
        if warm is None:
            return net
        sds = warm.get("members") or [warm["net"]]
        sd = sds[k % len(sds)]
        hw = next(key for key in sd if key.endswith("head.weight"))
        hb = hw[: -len("weight")] + "bias"
        m = Ys.shape[1]
        warm_noise = warm.get("noise") is not None
        warm_m = sd[hw].shape[0] // 2 if warm_noise else sd[hw].shape[0]
        # keep the warm net's noise rows only when they predict the same targets
        keep_noise = bool(self.noise) and warm_noise and warm_m == m
        if sd[hw].shape[0] != arch.out_dim or (self.noise and not keep_noise):
            W, B = sd[hw][:warm_m], sd[hb][:warm_m]
            if warm_m != m:
                # a single-output pretrained net starting a multi-output fit: every output
                # starts from the same head, which the least-squares refit then adapts
                W, B = W[:1].repeat(m, 1), B[:1].repeat(m)
            if self.noise:
                # noise rows: the warm net's, else a constant set by the refit below
                W2 = sd[hw][m : 2 * m] if keep_noise else torch.zeros_like(W)
                B2 = sd[hb][m : 2 * m] if keep_noise else torch.zeros_like(B)
                W, B = torch.cat([W, W2]), torch.cat([B, B2])
            sd = dict(sd)
            sd[hw], sd[hb] = W, B
        self._load_warm(net, sd)
        if fit_idx.numel() >= HEAD_REFIT_MIN:
            _refit_head(net, H[fit_idx], Ys[fit_idx], self.noise, reset_noise=not keep_noise)
        return net

    def _train(
        self,
        H: torch.Tensor,
        Ys: torch.Tensor,
        train_idx: torch.Tensor,
        cal_idx: torch.Tensor,
        arch: MLPConfig,
        warm: dict[str, Any] | None,
        seed: int,
        dev: torch.device,
        budget: float | None,
        imap: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        gen: torch.Generator,
    ) -> tuple[
        Any, list[TrainReport], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    ]:
        raise NotImplementedError

    def _rebuild(
        self, state: dict[str, Any], imap: InputMap, dev: torch.device, t0: float
    ) -> FitResult:
        raise NotImplementedError

    def _state(
        self,
        model: Any,
        arch: MLPConfig,
        imap: InputMap,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        scale: torch.Tensor,
        seed: int,
    ) -> dict[str, Any]:
        st: dict[str, Any] = {
            "kind": self.kind,
            "options": {k: v for k, v in self.options.items()},
            "arch": arch.to_dict(),
            "y_mean": y_mean.detach().cpu(),
            "y_std": y_std.detach().cpu(),
            "sigma_scale": scale.detach().cpu(),
            "seed": int(seed),
            "noise": model.noise,
            "noise_scale": model.noise_scale.detach().cpu(),
            "error_model": model.error_model.to_state() if model.error_model is not None else None,
        }
        if isinstance(model, DeepEnsembleModel):
            st["members"] = [_cpu_state(net) for net in model.nets]
        else:
            st["net"] = _cpu_state(model.net)
            st["samples"] = int(model.samples)
            st["mask_seed"] = int(model.mask_seed)
        return st


def _cpu_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _refit_head(
    net: MLP, H: torch.Tensor, Ys: torch.Tensor, noise: str | None = None, reset_noise: bool = True
) -> None:
    """Least-squares refit of the output layer's means on the body's features (per output).

    With `noise`, the log-scale rows are kept, or (`reset_noise`) set to the constant that
    fits the refit's residuals: the log rms for Gaussian noise, the log mean |r| for Laplace.
    """
    with torch.no_grad():
        was = net.training
        net.eval()
        Z = net.body(H.float())
        net.train(was)
        ones = torch.ones(Z.shape[0], 1, device=Z.device)
        A = torch.cat([Z, ones], dim=1)
        # ridge keeps the solve stable with fewer rows than features
        lam = 1e-3 * float((A * A).sum() / max(1, A.shape[0]))
        AtA = A.T @ A + lam * torch.eye(A.shape[1], device=A.device)
        W = torch.linalg.solve(AtA, A.T @ Ys.float())  # `(F + 1) x m`
        m = Ys.shape[1]
        net.head.weight[:m].copy_(W[:-1].T)
        net.head.bias[:m].copy_(W[-1])
        if noise and reset_noise:
            r = Ys.float() - A @ W
            spread = r.pow(2).mean(0).sqrt() if noise == "gaussian" else r.abs().mean(0)
            net.head.weight[m:].zero_()
            net.head.bias[m:].copy_(spread.clamp_min(1e-3).log())


class _EnsembleFamily(NeuralSurrogate):
    method = "ensemble"

    def _train(
        self, H, Ys, train_idx, cal_idx, arch, warm, seed, dev, budget, imap, y_mean, y_std, gen
    ):  # type: ignore[no-untyped-def]
        K = int(self.opts["members"])
        n_tr = train_idx.numel()
        crossfit = cal_idx.numel() == 0
        # one member cannot hold a fold out of its own training data: it trains on every row
        n_folds = min(K, n_tr // 3) if crossfit and n_tr >= 6 and K >= 2 else 0
        folds = torch.arange(n_tr) % n_folds if n_folds else None
        per_budget = budget / K if budget is not None else None
        nets: list[MLP] = []
        reports: list[TrainReport] = []
        val_sets: list[torch.Tensor] = []
        for k in range(K):
            if folds is not None:
                val = train_idx[folds == (k % n_folds)]
                fit_idx = train_idx[folds != (k % n_folds)]
            elif not crossfit:
                # large data: each member draws its own validation split (diversity for free)
                g = torch.Generator().manual_seed(seed * 7919 + k)
                p = train_idx[torch.randperm(n_tr, generator=g)]
                n_val = max(1, int(round(self.opts["val_fraction"] * n_tr)))
                val, fit_idx = p[:n_val], p[n_val:]
            else:
                val, fit_idx = torch.zeros(0, dtype=torch.long), train_idx
            if self.opts["bootstrap"]:
                g = torch.Generator().manual_seed(seed * 104729 + k)
                fit_idx = fit_idx[torch.randint(fit_idx.numel(), (fit_idx.numel(),), generator=g)]
            net = self._new_net(arch, warm, k, H, Ys, fit_idx, seed * 1000 + k, dev)
            rep = train_network(
                net,
                H[fit_idx],
                Ys[fit_idx],
                self._train_config(warm=warm is not None, budget=per_budget),
                X_val=H[val] if val.numel() else None,
                y_val=Ys[val] if val.numel() else None,
                seed=seed * 1000 + k,
                device=dev,
            )
            nets.append(net)
            reports.append(rep)
            val_sets.append(val)
        model = DeepEnsembleModel(nets, imap, y_mean, y_std, noise=self.noise).to(dev)
        if not crossfit:
            held_idx = cal_idx
            mu, sd, nv = _posterior_stats(model, H[cal_idx], y_mean, y_std)
        elif n_folds:
            # out-of-fold means from the members that held each row out; the spread is the
            # whole ensemble's at that row
            held_idx = train_idx.sort().values
            m = Ys.shape[1]
            outs = torch.stack([predict(net, H[held_idx], device=dev)[:, :m] for net in nets])
            outs = (outs * y_std + y_mean).cpu()  # `K x n x m`
            pos = {int(r): i for i, r in enumerate(held_idx)}
            total = torch.zeros_like(outs[0])
            count = torch.zeros(outs.shape[1], 1)
            for k, val in enumerate(val_sets):
                rows = torch.tensor([pos[int(r)] for r in val], dtype=torch.long)
                total[rows] += outs[k, rows]
                count[rows] += 1
            mu = total / count.clamp_min(1)
            if K > 1 or self.noise:
                _, sd, nv = _posterior_stats(model, H[held_idx], y_mean, y_std)
            else:
                sd = torch.full_like(mu, float("nan"))
                nv = torch.zeros_like(mu)
        else:
            held_idx = torch.zeros(0, dtype=torch.long)
            mu = torch.zeros(0, Ys.shape[1])
            sd = torch.zeros(0, Ys.shape[1])
            nv = torch.zeros(0, Ys.shape[1])
        return model, reports, (held_idx, mu, sd, nv)

    def _rebuild(self, state, imap, dev, t0):  # type: ignore[no-untyped-def]
        arch = self._arch_from_dict(state["arch"])
        nets = []
        for sd in state["members"]:
            net = self._make_net(arch)
            net.load_state_dict(sd)
            nets.append(net.eval())
        model = DeepEnsembleModel(
            nets,
            imap,
            state["y_mean"],
            state["y_std"],
            state["sigma_scale"],
            noise=state.get("noise"),
            noise_scale=state.get("noise_scale", 1.0),
        ).to(dev)
        return _rebuilt(model, state, t0, dev)


class _DropoutFamily(NeuralSurrogate):
    method = "dropout"

    def _train(
        self, H, Ys, train_idx, cal_idx, arch, warm, seed, dev, budget, imap, y_mean, y_std, gen
    ):  # type: ignore[no-untyped-def]
        if not self._has_dropout(arch):
            raise SurrogateInputError(f"surrogate '{self.kind}' needs dropout > 0")
        n_tr = train_idx.numel()
        n_val = 0
        if n_tr >= 6:
            n_val = max(2, int(round(self.opts["val_fraction"] * n_tr)))
        val, fit_idx = train_idx[:n_val], train_idx[n_val:]
        net = self._new_net(arch, warm, 0, H, Ys, fit_idx, seed, dev)
        rep = train_network(
            net,
            H[fit_idx],
            Ys[fit_idx],
            self._train_config(warm=warm is not None, budget=budget),
            X_val=H[val] if n_val else None,
            y_val=Ys[val] if n_val else None,
            seed=seed,
            device=dev,
        )
        # masks depend on the data size too, so each proposal round (one more batch measured)
        # draws new ones while a refit on the same data reproduces them
        model = MCDropoutModel(
            net,
            imap,
            y_mean,
            y_std,
            samples=int(self.opts["samples"]),
            seed=_mask_seed(seed, H),
            noise=self.noise,
        ).to(dev)
        held_idx = cal_idx if cal_idx.numel() else val.sort().values
        mu, sd, nv = _posterior_stats(model, H[held_idx], y_mean, y_std)
        return model, [rep], (held_idx, mu, sd, nv)

    def _rebuild(self, state, imap, dev, t0):  # type: ignore[no-untyped-def]
        net = self._make_net(self._arch_from_dict(state["arch"]))
        net.load_state_dict(state["net"])
        model = MCDropoutModel(
            net,
            imap,
            state["y_mean"],
            state["y_std"],
            samples=int(state["samples"]),
            seed=int(state["mask_seed"]),
            sigma_scale=state["sigma_scale"],
            noise=state.get("noise"),
            noise_scale=state.get("noise_scale", 1.0),
        ).to(dev)
        return _rebuilt(model, state, t0, dev)


def calibration_factors(
    y: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor, levels: int = 100
) -> dict[str, torch.Tensor]:
    """Variance factors (one per output) from held-out `k x m` truths, means and spreads.

    `rms` is `sqrt(mean(z^2))`, the Gaussian maximum-likelihood factor: it matches the mean
    squared error, so heavy error tails widen every interval. `curve` minimizes the
    miscalibration area (mean |observed - expected| fraction inside central Gaussian intervals
    over `levels` levels), which fits the bulk of the calibration curve instead of its tails.
    """
    score = (y - mu).abs() / sd.clamp_min(1e-12)  # `k x m`
    rms = (score**2).mean(0).sqrt()
    p = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
    z = math.sqrt(2.0) * torch.special.erfinv(p)  # central-interval half widths
    curve = torch.empty_like(rms)
    for j in range(score.shape[1]):
        srt = score[:, j].double().sort().values
        mid = float(srt[srt.numel() // 2])
        med = mid / 0.6745 if mid > 0 else 1.0  # the factor a Gaussian would need
        grid = med * torch.logspace(-1.5, 1.5, 601, dtype=torch.float64)  # `g`
        inside = torch.searchsorted(srt, grid[:, None] * z[None, :], right=True)  # `g x levels`
        area = (inside / srt.numel() - p).abs().mean(1)
        curve[j] = float(grid[int(area.argmin())])
    lo, hi = SCALE_LIMITS
    return {"rms": rms.clamp(lo, hi), "curve": curve.clamp(lo, hi)}


def noise_weights(
    y: torch.Tensor, mu: torch.Tensor, spread_var: torch.Tensor, noise_var: torch.Tensor
) -> torch.Tensor:
    """Weights (one per output) of the predicted noise against the members' spread.

    From held-out `k x m` truths, means, member variances and predicted noise variances: the
    weight `w` on a log grid over `NOISE_WEIGHT_LIMITS` whose spread `sqrt(var + w^2 noise)`
    gives the held-out errors the highest Laplace likelihood once the overall scale is fitted
    too (the profile `mean log s + log mean(|e| / s)`); of weights whose total log-likelihood
    is within `NOISE_WEIGHT_TOLERANCE` of the best, the one nearest 1. Only the ratio of the
    two parts is fitted here; the overall scale is `calibration_factors`' job. Laplace rather
    than Gaussian, because the errors of composition models are heavy-tailed and a Gaussian
    likelihood lets a few outliers pick the weight.
    """
    lo, hi = NOISE_WEIGHT_LIMITS
    grid = torch.cat(
        [torch.logspace(math.log10(lo), math.log10(hi), 41, dtype=torch.float64), torch.ones(1)]
    )
    err = (y - mu).abs().double()
    out = torch.ones(y.shape[1])
    for j in range(y.shape[1]):
        v = spread_var[:, j].double()[None, :] + grid[:, None] ** 2 * noise_var[:, j].double()
        sd = v.clamp_min(1e-24).sqrt()  # `g x k`
        score = sd.log().mean(1) + (err[:, j][None, :] / sd).mean(1).clamp_min(1e-300).log()
        score = torch.nan_to_num(score, nan=math.inf)
        if not bool(torch.isfinite(score).any()):
            continue
        # where the likelihood is flat (one part explains nothing), stay nearest to 1
        near = score <= score.min() + NOISE_WEIGHT_TOLERANCE / max(1, err.shape[0])
        out[j] = float(grid[near][int(grid[near].log().abs().argmin())])
    return out


def _mask_seed(seed: int, H: torch.Tensor) -> int:
    return (seed * 100003 + int(H.shape[0])) % (2**31)


def _posterior_stats(
    model: Any, H: torch.Tensor, y_mean: torch.Tensor, y_std: torch.Tensor, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`k x m` mean, predictive std and noise variance at features `H` (CPU).

    The std is the members' spread, plus their noise when they predict it, calibrated by the
    model's current `sigma_scale` and `noise_scale`; the noise variance is the part of its
    square that comes from the predicted noise (zeros for networks that predict none)."""
    model.eval()
    mus, sds, nvs = [], [], []
    with torch.no_grad():
        for s in range(0, H.shape[0], chunk):
            raw = model._members(H[s : s + chunk])
            out = model.values_from(raw, observation_noise=True, H=H[s : s + chunk])
            mus.append(out.mean(-3).cpu())
            sd = out.std(-3).cpu()
            sds.append(sd)
            if model.noise is not None:
                nv = (model._noise(raw) * model.sigma_scale).pow(2).mean(-3).cpu()
                nvs.append(torch.minimum(nv, sd.pow(2)))
            else:
                nvs.append(torch.zeros_like(sd))
    m = y_mean.numel()
    if not mus:
        return torch.zeros(0, m), torch.zeros(0, m), torch.zeros(0, m)
    return torch.cat(mus), torch.cat(sds), torch.cat(nvs)


def _rebuilt(model: Any, state: dict[str, Any], t0: float, dev: torch.device) -> FitResult:
    if state.get("error_model") is not None:
        model.set_error_model(ErrorModel.from_state(state["error_model"]))
    m = int(state["y_mean"].numel())
    empty = torch.zeros(0, m, dtype=torch.double)
    scale = state["sigma_scale"]
    info = {
        "fit_seconds": round(time.perf_counter() - t0, 4),
        "reused": True,
        "device": str(dev),
        "sigma_scale": float(scale[0]) if m == 1 else [float(s) for s in scale],
    }
    return FitResult(
        model=model,
        heldout_mean=empty,
        heldout_std=empty,
        state=state,
        info=info,
        heldout_index=torch.zeros(0, dtype=torch.long),
    )


_MLP_DEFAULTS = {**_COMMON, "hidden": [128, 128]}
# ElemNet's published training: MAE loss, Adam at 1e-4, batch 32
_ELEMNET_DEFAULTS = {
    **_COMMON,
    "size": "small",
    "lr": 1e-4,
    "loss": "mae",
    "dropout_scale": None,
}


@register_surrogate("ensemble")
class DeepEnsemble(_EnsembleFamily):
    """Deep ensemble of MLPs over any continuous, integer or one-hot inputs.

    Options: `members` (5), `bootstrap` (false), `hidden` ([128, 128]) and the training options
    `epochs`, `patience`, `warm_patience`, `time_budget` (seconds for the whole fit),
    `batch_size`, `lr`, `weight_decay`, `loss` (mse, mae, gaussian_nll or laplace_nll: the
    last two also predict each point's noise), `val_fraction`, `cal_fraction`,
    `calibrate`, `amp`.
    """

    defaults = {**_MLP_DEFAULTS, "members": 5, "bootstrap": False}


@register_surrogate("mc-dropout")
class MCDropout(_DropoutFamily):
    """One MLP with dropout, `samples` (32) fixed masks; `dropout` (0.1) after each layer."""

    defaults = {**_MLP_DEFAULTS, "samples": 32, "dropout": 0.1}


@register_surrogate("elemnet-ensemble")
class ElemNetEnsemble(_EnsembleFamily):
    """Deep ensemble of ElemNets on element fractions; `size` full, small (default) or tiny;
    `pretrained` names a model stored by `loop surrogate pretrain` to fine-tune. Members use
    ElemNet's dropout at full size and none at the narrow sizes (`dropout_scale` overrides)."""

    elemnet = True
    # at quarter width ElemNet's dropout costs accuracy (OQMD, 46k rows, 90 s: test MAE 0.162
    # with it, 0.108 without); the members' disagreement is the uncertainty, so it stays off
    narrow_dropout_scale = 0.0
    defaults = {**_ELEMNET_DEFAULTS, "members": 5, "bootstrap": False}


@register_surrogate("elemnet-dropout")
class ElemNetDropout(_DropoutFamily):
    """One ElemNet with dropout, `samples` (32) fixed masks; the published rates at full size,
    half of them at the narrow sizes (`dropout_scale` overrides)."""

    elemnet = True
    # half the published rates at the narrow sizes (OQMD, 46k rows, 150 s: test MAE 0.124 at
    # half, 0.130 at a quarter, 0.200 at the full rates in 300 s)
    narrow_dropout_scale = 0.5
    defaults = {**_ELEMNET_DEFAULTS, "samples": 32}


class _CrystalGraphFamily(NeuralSurrogate):
    """CGCNN networks over candidate indices into the pool's `GraphStore`."""

    needs_structures = True
    error_model_inputs = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._store: Any = None

    def set_structures(self, store: Any) -> None:
        self._store = store

    def _input_map(self, d: int, bounds: torch.Tensor, input_names: list[str] | None) -> InputMap:
        if d != 1:
            raise SurrogateInputError(
                f"surrogate '{self.kind}' reads one column, the structure's index in the pool; "
                f"got {d} columns"
            )
        if self._store is None:
            raise SurrogateInputError(
                f"surrogate '{self.kind}' has no crystal graphs; it runs in [structures] "
                "campaigns, whose pool the engine featurizes for it"
            )
        if float(bounds[1, 0]) >= len(self._store):
            raise SurrogateInputError(
                f"the design column reaches index {float(bounds[1, 0]):g}, but the pool holds "
                f"{len(self._store)} structures"
            )
        return InputMap(torch.eye(1), torch.zeros(1))

    def _arch(self, in_dim: int, m: int) -> CGCNNConfig:
        p = float(self.opts.get("dropout", 0.0)) if self.method == "dropout" else 0.0
        return CGCNNConfig(
            embed=int(self.opts["embed"]),
            n_conv=int(self.opts["convs"]),
            hidden=int(self.opts["width"]),
            out_dim=self._out_width(m),
            dropout=p,
        )

    def _warm_arch(self, arch: Any, warm: dict[str, Any], m: int) -> CGCNNConfig:
        return replace(
            CGCNNConfig.from_dict(warm["arch"]), out_dim=self._out_width(m), dropout=arch.dropout
        )

    def _arch_from_dict(self, d: dict[str, Any]) -> CGCNNConfig:
        return CGCNNConfig.from_dict(d)

    def _make_net(self, arch: Any) -> CGCNNOnIndices:
        return CGCNNOnIndices(self._store, arch)

    def _has_dropout(self, arch: Any) -> bool:
        return bool(arch.dropout > 0)

    def _load_warm(self, net: Any, sd: dict[str, torch.Tensor]) -> None:
        net.load_state_dict(sd)

    def _usable_warm(
        self, warm: dict[str, Any] | None, in_dim: int, m: int
    ) -> dict[str, Any] | None:
        if warm is None or "arch" not in warm or "n_conv" not in warm["arch"]:
            return None
        mine = CGCNNConfig()
        a = warm["arch"]
        if (a.get("atom_dim"), a.get("edge_dim")) != (mine.atom_dim, mine.edge_dim):
            return None
        if not (warm.get("members") or warm.get("net")):
            return None
        return warm


# the settings of `loop benchmark structures` (perov_5: MAE 0.074 eV per cell on 2 CPU cores)
_CGCNN_DEFAULTS = {**_COMMON, "batch_size": 64, "embed": 64, "convs": 4, "width": 32}


@register_surrogate("cgcnn-ensemble")
class CGCNNEnsemble(_EnsembleFamily, _CrystalGraphFamily):
    """Deep ensemble of CGCNNs on a `[structures]` pool; `members` (5), `embed` (64),
    `convs` (4), `width` (32, the hidden layer) and the training options of `ensemble`."""

    defaults = {**_CGCNN_DEFAULTS, "members": 5, "bootstrap": False}


@register_surrogate("cgcnn-mcdropout")
class CGCNNDropout(_DropoutFamily, _CrystalGraphFamily):
    """One CGCNN with `dropout` (0.1) before its output layer and `samples` (32) fixed masks."""

    defaults = {**_CGCNN_DEFAULTS, "samples": 32, "dropout": 0.1}


class _VoxelFamily(NeuralSurrogate):
    """3-D (or 2-D) CNNs over candidate indices into a stack of voxel images."""

    needs_images = True
    error_model_inputs = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._images: torch.Tensor | None = None

    def set_images(self, images: torch.Tensor) -> None:
        """The `n x *grid` image stack the design column indexes (phase-1 fraction per voxel)."""
        self._images = images

    def _input_map(self, d: int, bounds: torch.Tensor, input_names: list[str] | None) -> InputMap:
        if d != 1:
            raise SurrogateInputError(
                f"surrogate '{self.kind}' reads one column, the image's index in the stack; "
                f"got {d} columns"
            )
        if self._images is None:
            raise SurrogateInputError(
                f"surrogate '{self.kind}' has no images; give it the stack with set_images"
            )
        if float(bounds[1, 0]) >= len(self._images):
            raise SurrogateInputError(
                f"the design column reaches index {float(bounds[1, 0]):g}, but the stack holds "
                f"{len(self._images)} images"
            )
        return InputMap(torch.eye(1), torch.zeros(1))

    def _arch(self, in_dim: int, m: int) -> VoxelCNNConfig:
        assert self._images is not None
        p = float(self.opts.get("dropout", 0.0)) if self.method == "dropout" else 0.0
        return VoxelCNNConfig(
            dim=self._images.dim() - 1,
            channels=tuple(self.opts["channels"]),
            hidden=int(self.opts["width"]),
            out_dim=self._out_width(m),
            dropout=p,
        )

    def _warm_arch(self, arch: Any, warm: dict[str, Any], m: int) -> VoxelCNNConfig:
        return replace(
            VoxelCNNConfig.from_dict(warm["arch"]),
            out_dim=self._out_width(m),
            dropout=arch.dropout,
        )

    def _arch_from_dict(self, d: dict[str, Any]) -> VoxelCNNConfig:
        return VoxelCNNConfig.from_dict(d)

    def _make_net(self, arch: Any) -> VoxelCNNOnIndices:
        assert self._images is not None
        return VoxelCNNOnIndices(self._images, arch)

    def _has_dropout(self, arch: Any) -> bool:
        return bool(arch.dropout > 0)

    def _load_warm(self, net: Any, sd: dict[str, torch.Tensor]) -> None:
        net.load_state_dict(sd)

    def _usable_warm(
        self, warm: dict[str, Any] | None, in_dim: int, m: int
    ) -> dict[str, Any] | None:
        if warm is None or "arch" not in warm or "channels" not in warm["arch"]:
            return None
        if self._images is None or warm["arch"].get("dim") != self._images.dim() - 1:
            return None
        if not (warm.get("members") or warm.get("net")):
            return None
        return warm


_CNN_DEFAULTS = {**_COMMON, "batch_size": 32, "channels": [16, 32, 64, 64, 128], "width": 128}


@register_surrogate("cnn3d-ensemble")
class VoxelCNNEnsemble(_EnsembleFamily, _VoxelFamily):
    """Deep ensemble of voxel CNNs (Yang et al. 2018) on a stack of microstructure images;
    `members` (5), `channels` ([16, 32, 64, 64, 128]), `width` (128, the dense layer)."""

    defaults = {**_CNN_DEFAULTS, "members": 5, "bootstrap": False}


@register_surrogate("cnn3d-mcdropout")
class VoxelCNNDropout(_DropoutFamily, _VoxelFamily):
    """One voxel CNN with `dropout` (0.1) before its output layer and `samples` (32) masks."""

    defaults = {**_CNN_DEFAULTS, "samples": 32, "dropout": 0.1}
