"""The torch modules the estimators assemble: body and head, a frozen part."""

from torch import nn

__all__ = ["BodyHeadModule", "FrozenModule"]


class BodyHeadModule(nn.Module):
    """``head(body(x))``, exposing the body's features to knowledge terms.

    Parameter names start with ``body.`` or ``head.``, which is what
    ``freeze`` and the learning-rate groups refer to.
    """

    def __init__(self, body, head):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, inputs):
        return self.head(self.body(inputs))

    def forward_with_features(self, inputs):
        features = self.body(inputs)
        return features, self.head(features)


class FrozenModule(nn.Module):
    """A sub-network that never trains: no gradients, always in eval mode.

    Its parameters are left out of the optimizer (see
    :meth:`~sktransfer._engine.TransferNet.get_all_learnable_params`), so no
    optimizer state or weight decay can reach them, and ``train()`` leaves it
    in evaluation mode, so dropout stays off and batch-norm statistics stay
    as they were.
    """

    def __init__(self, module):
        super().__init__()
        self.module = module.requires_grad_(False).eval()

    def train(self, mode=True):
        self.training = mode
        self.module.eval()
        return self

    def forward(self, inputs):
        return self.module(inputs)
