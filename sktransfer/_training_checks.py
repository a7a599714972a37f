"""Checks of a fit's training set-up, made before any training work.

Each refuses a set-up that torch or scikit-learn would refuse later, deep in
training, with a message that names neither the parameter at fault nor the
remedy: a device this torch cannot use, a validation split too small for the
data, a network with nothing left to train, batch normalization fed batches
of one sample.
"""

import math

import torch
from torch import nn

from ._modules import FrozenModule

__all__ = [
    "check_batch_norm_batches",
    "check_device",
    "check_something_trains",
    "check_validation_split",
]


def check_device(device):
    """Refuse a ``device`` this torch cannot use, saying why.

    A tensor is allocated on the device: whatever the reason it cannot be
    used (a CPU-only build of torch, no GPU visible, a device index beyond
    the GPUs there are, a misspelt name), it fails here, before any work.
    """
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device: {exc}. Use e.g. 'cpu', "
            "'cuda' or 'cuda:1'."
        ) from exc
    try:
        torch.empty(0, device=torch_device)
    except (AssertionError, RuntimeError) as exc:
        if torch_device.type == "cuda" and torch.version.cuda is None:
            reason = f"this torch ({torch.__version__}) was built without CUDA"
            remedy = (
                "Use device='cpu', or install a CUDA build of torch "
                "(https://pytorch.org/get-started/)."
            )
        elif torch_device.type == "cuda" and not torch.cuda.is_available():
            reason = "no CUDA GPU is visible (torch.cuda.is_available() is False)"
            remedy = (
                "Use device='cpu', or check the GPU driver and CUDA_VISIBLE_DEVICES."
            )
        elif torch_device.type == "cuda":
            reason = f"this machine has {torch.cuda.device_count()} CUDA device(s)"
            remedy = "Use 'cuda:0' up to the last index, or device='cpu'."
        else:
            reason = str(exc).strip().splitlines()[0]
            remedy = "Use device='cpu', or a device this torch supports."
        raise ValueError(
            f"device={device!r} cannot be used: {reason}. {remedy}"
        ) from exc


def check_validation_split(n_samples, validation_fraction, n_classes=None):
    """Refuse an early-stopping split that leaves a part too small.

    The sizes are those of ``sklearn.model_selection.train_test_split``
    (``ceil(validation_fraction * n_samples)`` held out); a stratified split
    (``n_classes`` given) needs one sample of each class in both parts.
    """
    n_valid = math.ceil(validation_fraction * n_samples)
    n_train = n_samples - n_valid
    held_out = (
        f"early_stopping=True holds out validation_fraction={validation_fraction} "
        f"of the {n_samples} samples for validation ({n_valid}), which leaves "
        f"{n_train} to train on"
    )
    remedy = (
        "Pass more samples, change validation_fraction, or set "
        "early_stopping=False (then max_epochs alone ends training)."
    )
    if n_train < 1 or n_valid < 1:
        raise ValueError(f"{held_out}: both parts need samples. {remedy}")
    if n_classes is not None and min(n_train, n_valid) < n_classes:
        raise ValueError(
            f"{held_out}: the split keeps the class proportions, so each part "
            f"needs at least one sample of each of the {n_classes} classes. "
            f"{remedy}"
        )


def check_something_trains(module, freeze, freeze_prefixes, unfreeze_at):
    """Refuse a network none of whose parameters would train in epoch 1.

    torch would fail in the first backward pass ("element 0 of tensors does
    not require grad"). Parameters train unless they have
    ``requires_grad=False`` (as set by the user or in a frozen part) or match
    ``freeze_prefixes`` before epoch ``unfreeze_at``.
    """

    def frozen_by_schedule(name):
        return any(
            name == prefix or name.startswith(prefix + ".")
            for prefix in freeze_prefixes
        )

    trainable = [
        name for name, parameter in module.named_parameters() if parameter.requires_grad
    ]
    frozen_in_epoch_1 = unfreeze_at is None or unfreeze_at > 1
    if (
        frozen_in_epoch_1
        and trainable
        and all(frozen_by_schedule(name) for name in trainable)
    ):
        until = (
            "for the whole fit"
            if unfreeze_at is None
            else f"until epoch {unfreeze_at} (unfreeze_at)"
        )
        raise ValueError(
            f"freeze={freeze!r} freezes every parameter of the network "
            f"{until}, so training would change nothing. Leave a part to "
            "train (e.g. freeze='body' trains the head only); to use the "
            "network as it is, use PretrainedFeatureTransformer."
        )
    if not trainable:
        raise ValueError(
            "No parameter of the network can train: every one has "
            "requires_grad=False (copied from the source network you passed). "
            "Call source_module.requires_grad_(True) first, or use head='new' "
            "to train a new head; freeze= says what stays fixed."
        )


def check_batch_norm_batches(module, sample, n_samples, batch_size, data="X"):
    """Refuse training batches of one sample for batch normalization.

    Batch normalization in training mode needs more than one value per
    channel; with one value per channel per sample (e.g. ``BatchNorm1d`` on
    features), a batch of one sample fails inside torch. Batches of one
    occur with ``batch_size=1`` or a single training sample (a last batch of
    one joins the batch before it). Layers in a frozen part stay in
    evaluation mode and are not concerned.
    """
    if n_samples > 1 and batch_size > 1:
        return
    layers = _training_batch_norm_layers(module)
    if not layers:
        return
    values_per_channel = _values_per_channel(module, sample, layers)
    failing = [name for name in layers if values_per_channel.get(name) == 1]
    if not failing:
        return
    cause = (
        f"{data} has a single training sample"
        if n_samples <= 1
        else f"batch_size={batch_size}"
    )
    raise ValueError(
        f"The network normalizes batches ({', '.join(repr(n) for n in failing)}: "
        f"{type(module.get_submodule(failing[0])).__name__}), which needs at least "
        f"two samples per training batch, but {cause}. Use batch_size >= 2 and "
        "at least two training samples."
    )


def _training_batch_norm_layers(module):
    frozen = [
        name for name, sub in module.named_modules() if isinstance(sub, FrozenModule)
    ]
    return [
        name
        for name, sub in module.named_modules()
        if isinstance(sub, nn.modules.batchnorm._BatchNorm)
        and not any(name.startswith(prefix + ".") for prefix in frozen)
    ]


def _values_per_channel(module, sample, layers):
    """Values per channel per sample reaching each layer, from one eval pass."""
    found, handles = {}, []
    for name in layers:

        def record(layer, args, name=name):
            found[name] = math.prod(args[0].shape[2:])

        handles.append(module.get_submodule(name).register_forward_pre_hook(record))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(sample)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return found
