"""Built-in models to search on: a small CNN, a small residual net and a deep MLP."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BUILTIN_MODELS", "SmallResNet", "deep_mlp", "small_cnn"]


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """A CIFAR-sized ``nn.Sequential`` CNN for ``(N, 3, 32, 32)`` inputs (13 steps, 12 cuts).

    >>> small_cnn()(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 32, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, num_classes),
    )  # fmt: skip


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (
            nn.Identity() if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """A small residual net for ``(N, 3, 32, 32)``: stem, three blocks, pooling, classifier.

    Cut through its fx graph: inside a block both the branch and the skip cross.

    >>> SmallResNet()(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.layer1 = _Block(width, width, 1)
        self.layer2 = _Block(width, 2 * width, 2)
        self.layer3 = _Block(2 * width, 4 * width, 2)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(torch.relu(self.stem(x)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def deep_mlp(depth: int = 64, width: int = 256, in_features: int = 3 * 32 * 32) -> nn.Sequential:
    """A ``nn.Sequential`` MLP of ``1 + 2 * depth`` steps (Flatten, then Linear+ReLU pairs).

    The widths shrink and grow (``width``, ``width / 4``...) so that cuts differ in size.

    >>> model = deep_mlp(depth=30)
    >>> len(model), model(torch.zeros(1, 3, 32, 32)).shape
    (61, torch.Size([1, 10]))
    """
    layers: list[nn.Module] = [nn.Flatten()]
    features = in_features
    for i in range(depth):
        out = 10 if i == depth - 1 else (width if i % 3 else width // 4)
        layers += [nn.Linear(features, out), nn.ReLU() if i < depth - 1 else nn.Identity()]
        features = out
    return nn.Sequential(*layers)


BUILTIN_MODELS = {"small-cnn": small_cnn, "small-resnet": SmallResNet, "deep-mlp": deep_mlp}
