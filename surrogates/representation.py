"""The surrogate's learned representation of inputs, for projections in reports.

- deep ensembles: the last hidden layer of every member, side by side (`n x (members * width)`);
- MC dropout: the last hidden layer without dropout (`n x width`);
- GPs: the inputs as the kernel sees them, normalized and divided by the ARD lengthscales
  (`n x d`), so that distances are the kernel's distances;
- anything else: the inputs themselves.
"""

from __future__ import annotations

import torch
from botorch.models.model import Model

__all__ = ["learned_features"]


def learned_features(model: Model, X: torch.Tensor) -> torch.Tensor:
    """`n x k` features of `n x d` inputs `X` under a fitted `model`."""
    from surrogates.ensemble import DeepEnsembleModel, MCDropoutModel

    with torch.no_grad():
        if isinstance(model, DeepEnsembleModel):
            H = model.input_map(X.to(model.device))
            return torch.cat([net.body(H) for net in model.nets], dim=-1).cpu()  # type: ignore[operator]
        if isinstance(model, MCDropoutModel):
            H = model.input_map(X.to(model.device))
            layers = model.net.dropout_layers
            saved = [layer.masks for layer in layers]
            for layer in layers:
                layer.masks = None  # eval mode without masks: the deterministic network
            try:
                return model.net.body(H).cpu()
            finally:
                for layer, masks in zip(layers, saved):
                    layer.masks = masks
        Z = X
        tf = getattr(model, "input_transform", None)
        if tf is not None:
            Z = tf(X)
        for module in model.modules():
            ls = getattr(module, "lengthscale", None)
            if isinstance(ls, torch.Tensor) and ls.shape[-1] == Z.shape[-1]:
                return (Z / ls.reshape(-1, Z.shape[-1])[0]).detach().cpu()
        return Z.detach().cpu()
