"""The classic four-block convolutional network of few-shot learning.

Vinyals et al., "Matching Networks for One Shot Learning", NeurIPS 2016,
https://arxiv.org/abs/1606.04080; used by ProtoNet and MAML.
"""

from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """(B, in_chans, H, W) -> (B, hidden * (H // 16) * (W // 16)) flattened features."""

    def __init__(self, in_chans: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_chans, hidden), *(conv_block(hidden, hidden) for _ in range(3)), nn.Flatten()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
