"""The PyBlaze tutorial "Training a Classifier" runs with only its imports changed.

The code below is the tutorial's, block by block. Only CIFAR-10 is replaced (through
monkeypatch, the code is untouched) by a small random data set of the same format, because tests
never download, and plt.show() closes the figure instead of opening a window.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pytest
import torch
import torchvision
from torch.utils.data import Dataset

TUTORIAL = """
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms
import pyblaze_pl.nn as xnn
import pyblaze_pl.nn.functional as X
import matplotlib.pyplot as plt

train_val_dataset = torchvision.datasets.CIFAR10(
    root="~/Downloads/", train=True, download=True, transform=transforms.ToTensor()
)
test_dataset = torchvision.datasets.CIFAR10(
    root="~/Downloads/", train=False, download=True, transform=transforms.ToTensor()
)

train_dataset, val_dataset = train_val_dataset.random_split(0.8, 0.2)

train_loader = train_dataset.loader(batch_size=256, num_workers=4, shuffle=True)
val_loader = val_dataset.loader(batch_size=2048)
test_loader = test_dataset.loader(batch_size=2048)

class Model(xnn.Estimator, nn.Module):

    __engine__ = xnn.SupervisedEngine

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 400)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x

model = Model()

optimizer = optim.Adam(model.parameters())
history = model.fit(
    train_loader,
    val_data=val_loader,
    epochs=20,
    optimizer=optimizer,
    loss=nn.CrossEntropyLoss(),
    callbacks=[
        xnn.BatchProgressLogger(),
        xnn.EarlyStopping(patience=3)
    ],
    metrics={
        'accuracy': X.accuracy
    }
)

all_losses = history.micro_train_loss
plt.figure(dpi=150)
plt.plot(range(len(all_losses)), all_losses)
plt.show()

plt.figure(dpi=150)
plt.plot(range(len(history)), history.train_loss, label='Training Loss')
plt.plot(range(len(history)), history.val_loss, label='Validation Loss')
plt.legend()
plt.show()

evaluation = model.evaluate(
    test_loader,
    callbacks=[
        xnn.PredictionProgressLogger()
    ],
    metrics={
        'accuracy': X.accuracy
    }
)

print(f"Our model achieves an accuracy of {evaluation.accuracy:.2%}.")
"""

SUMMARY = re.compile(
    r"^ \[Elapsed \d+:\d{2}:\d{2}\] train_loss: \d+\.\d{5}, val_accuracy: [01]\.\d{5}, "
    r"val_loss: \d+\.\d{5}$"
)


class SmallCIFAR10(Dataset):
    """CIFAR-10's interface and item format (ToTensor images, int labels) on random data."""

    def __init__(self, root, train=True, download=False, transform=None):
        generator = torch.Generator().manual_seed(0 if train else 1)
        n = 640 if train else 200
        self.images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
        self.labels = torch.randint(0, 10, (n,), generator=generator).tolist()
        # Learnable: brighten one channel by class, so accuracy can rise above chance.
        for i, label in enumerate(self.labels):
            self.images[i, label % 3] //= 4
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index].permute(1, 2, 0).numpy()  # HWC uint8, like PIL
        return self.transform(image), self.labels[index]


def test_tutorial_runs_unchanged(monkeypatch, capsys):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", SmallCIFAR10)
    shown = []
    monkeypatch.setattr(plt, "show", lambda: (shown.append(plt.gcf()), plt.close()))
    namespace = {}
    exec(compile(TUTORIAL, "training-a-classifier.rst", "exec"), namespace)

    history, evaluation = namespace["history"], namespace["evaluation"]
    lines = capsys.readouterr().out.splitlines()
    epochs = len(history)
    assert 1 <= epochs <= 20
    assert lines[0] == "Epoch 1/20:"
    for epoch in range(epochs):
        assert lines[2 * epoch] == f"Epoch {epoch + 1}/20:"
        assert SUMMARY.match(lines[2 * epoch + 1]), lines[2 * epoch + 1]
    assert len(history.micro_train_loss) == 2 * epochs  # 512 training images, batches of 256
    assert history.keys == ["micro_train_loss", "train_loss", "val_accuracy", "val_loss"]
    assert len(shown) == 2
    assert re.fullmatch(r"Our model achieves an accuracy of \d+\.\d{2}%\.", lines[-1])
    assert re.fullmatch(r" \[Elapsed \d+:\d{2}:\d{2}\]", lines[-2])
    # evaluate's accuracy is the accuracy of the trained model's predictions, and training learnt
    # something: chance is 10 %, and the darkened channel tells a third of the classes apart.
    model, test_loader = namespace["model"], namespace["test_loader"]
    labels = torch.tensor(test_loader.dataset.labels)
    expected = (model.predict(test_loader).argmax(-1) == labels).float().mean().item()
    assert evaluation.accuracy == pytest.approx(expected, abs=1e-6)
    assert evaluation.accuracy > 0.15
