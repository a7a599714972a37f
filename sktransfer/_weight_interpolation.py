"""Weight-space ensembling of the starting and the fine-tuned network (WiSE-FT).

Fine-tuning on a few target samples gains on the target's distribution and
often loses robustness the pretrained weights had. Interpolating, parameter
by parameter, between the weights fine-tuning started from and the weights it
ended with keeps much of both (Wortsman et al., "Robust fine-tuning of
zero-shot models", CVPR 2022).
"""

import torch

__all__ = ["interpolate_weights", "snapshot_weights"]


def snapshot_weights(module):
    """A copy of the floating-point parameters and buffers of ``module``."""
    return {
        name: tensor.detach().clone()
        for name, tensor in module.state_dict().items()
        if tensor.is_floating_point()
    }


def interpolate_weights(module, start, interpolation, end=None):
    """Set ``θ ← (1 − interpolation) · θ_start + interpolation · θ_end``, in place.

    Parameters
    ----------
    module : nn.Module
        The fine-tuned network.
    start : dict of str to Tensor
        :func:`snapshot_weights` of the same network before fine-tuning.
        Batch-norm running statistics are interpolated like the weights;
        integer buffers (batch counters) keep their fine-tuned values.
    interpolation : float in [0, 1]
        1 keeps the fine-tuned weights, 0 restores the starting ones.
    end : dict of str to Tensor or None, default=None
        :func:`snapshot_weights` of the fine-tuned network; None: the weights
        ``module`` holds now. Given, the same fine-tuned network can be
        interpolated again with other weights.
    """
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name in start:
                finished = tensor if end is None else end[name]
                tensor.copy_(torch.lerp(start[name], finished, interpolation))
