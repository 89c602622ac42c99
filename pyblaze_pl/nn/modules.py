"""PyBlaze's ``torch.nn`` modules: v1's loss and stacked LSTMs, 2.x's ``View`` and
``LinearResidual``. Plain modules with PyBlaze's semantics and parameter names, so PyBlaze state
dicts load into them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LinearResidual", "StackedLSTM", "StackedLSTMCell", "View", "WeightedBCELoss"]

LSTMState = tuple[Tensor, Tensor]


class View(nn.Module):
    """Reshapes its input with ``x.view(*shape)``, e.g. inside ``nn.Sequential`` (PyBlaze 2.x).

    The shape includes the batch dimension; at most one entry may be ``-1``.

    Args:
        *shape: The new shape.

    Example:
        >>> View(-1, 1, 4, 4)(torch.zeros(2, 16)).shape
        torch.Size([2, 1, 4, 4])
    """

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.dim = shape  # PyBlaze's attribute name

    def forward(self, x: Tensor) -> Tensor:
        return x.view(*self.dim)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.dim))


class LinearResidual(nn.Module):
    """Two linear layers around a nonlinearity, plus the input (PyBlaze 2.x):
    ``f(x) = x + W2 act(W1 x + b1) + b2``.

    Args:
        dim: The dimension of the input and of the output.
        hidden_dim: The output dimension of ``W1``.
        activation: The nonlinearity ``act`` (default ``nn.ReLU()``).
        bias: Whether the linear layers have biases.

    Example:
        >>> LinearResidual(8, 32)(torch.zeros(4, 8)).shape
        torch.Size([4, 8])
    """

    def __init__(
        self, dim: int, hidden_dim: int, activation: nn.Module | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.activation = nn.ReLU() if activation is None else activation
        self.w2 = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.w2(self.activation(self.w1(x)))


class WeightedBCELoss(nn.Module):
    """Binary cross entropy with balanced class weights and an ignored label (PyBlaze v1).

    Without arguments it is ``nn.BCELoss()``. With ``labels``, every sample's loss is multiplied
    by the weight of its class, ``len(labels) / (num_classes * count(class))`` (scikit-learn's
    ``'balanced'`` weights for the classes ``0 .. max(labels)``), and the mean is taken. Samples
    whose target equals ``ignore_index`` are left out.

    Args:
        labels: The training labels the class weights are computed from (integers ``>= 0``;
            floats such as BCE targets ``0.0``/``1.0`` are accepted when integral). Every class
            up to the largest label must occur.
        ignore_index: A target value whose samples are ignored.

    Example:
        >>> loss = WeightedBCELoss(labels=[0, 0, 0, 1])
        >>> loss.weights
        tensor([0.6667, 2.0000])
        >>> loss(torch.tensor([0.2, 0.9]), torch.tensor([0.0, 1.0]))
        tensor(0.1797)
    """

    weights: Tensor | None

    def __init__(
        self,
        labels: Sequence[float] | np.ndarray | Tensor | None = None,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        weights = None if labels is None else _balanced_class_weights(labels)
        # Not in the state dict, as in PyBlaze (whose weights were a plain attribute).
        self.register_buffer("weights", weights, persistent=False)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if self.ignore_index is not None:
            keep = y_true != self.ignore_index
            y_pred, y_true = y_pred[keep], y_true[keep]
        if self.weights is None:
            return F.binary_cross_entropy(y_pred, y_true)
        # The loss is usually not part of the model, so its weights may not have moved with it.
        weights = self.weights.to(y_pred.device)
        bce = F.binary_cross_entropy(y_pred, y_true, reduction="none")
        return (bce * weights[y_true.long()]).mean()


def _balanced_class_weights(labels: Sequence[float] | np.ndarray | Tensor) -> Tensor:
    """``n / (k * bincount(labels))`` for the classes ``0 .. k-1``, ``k = max(labels) + 1``."""
    values = torch.as_tensor(np.asarray(labels)).flatten()
    integral = values.numel() > 0 and bool((values == values.round()).all() & (values >= 0).all())
    if not integral:
        raise ValueError(
            "Expected labels to be a non-empty sequence of class indices (integers >= 0). "
            f"Received: {values.tolist()[:10]}{' ...' if values.numel() > 10 else ''}."
        )
    counts = torch.bincount(values.long())
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"Expected every class from 0 to {len(counts) - 1} to occur in labels (their "
            f"weight would be infinite). Received: no samples of class(es) {missing}."
        )
    return (values.numel() / (len(counts) * counts)).float()


class StackedLSTMCell(nn.Module):
    """One time step of a stack of LSTM cells with a hidden size per layer (PyBlaze v1).

    Args:
        input_size: The dimension of the inputs.
        hidden_sizes: The hidden dimension of each layer, bottom first.
        bias: Whether the cells have biases.
        cudnn: ``True`` uses ``nn.LSTMCell``; ``False`` uses PyBlaze v1's own cell (parameters
            ``input_weight``, ``hidden_weight``, ``bias``), which v1 offered for higher-order
            gradients. Both support them in current PyTorch; keep ``False`` only to load weights
            trained with it.

    Example:
        >>> cell = StackedLSTMCell(4, [8, 16])
        >>> output, states = cell(torch.zeros(2, 4))
        >>> output.shape, [h.shape[1] for h, c in states]
        (torch.Size([2, 16]), [8, 16])
    """

    def __init__(
        self, input_size: int, hidden_sizes: Sequence[int], bias: bool = True, cudnn: bool = True
    ) -> None:
        super().__init__()
        hidden_sizes = list(hidden_sizes)
        if not hidden_sizes:
            raise ValueError(
                "Expected hidden_sizes to name at least one layer, e.g. [64]. Received: []."
            )
        self.num_stacked = len(hidden_sizes)
        cell = nn.LSTMCell if cudnn else _LSTMCell
        sizes = zip([input_size, *hidden_sizes[:-1]], hidden_sizes, strict=True)
        self.cells = nn.ModuleList(cell(n_in, n_out, bias=bias) for n_in, n_out in sizes)

    def forward(
        self, x: Tensor, initial_states: Sequence[LSTMState] | None = None
    ) -> tuple[Tensor, list[LSTMState]]:
        """Runs one time step through every layer.

        Args:
            x: The input ``[B, N]``.
            initial_states: ``(hidden, cell)`` of each layer, ``[B, H_i]`` each; zeros if
                ``None``.

        Returns:
            The top layer's hidden state ``[B, H_last]``, and the new ``(hidden, cell)`` of every
            layer (a new list; PyBlaze v1 also overwrote the list it was given).
        """
        if initial_states is not None and len(initial_states) != self.num_stacked:
            raise ValueError(
                f"Expected one (hidden, cell) state per layer ({self.num_stacked}). "
                f"Received: {len(initial_states)}."
            )
        states = []
        for i, cell in enumerate(self.cells):
            x, memory = cell(x, None if initial_states is None else initial_states[i])
            states.append((x, memory))
        return x, states


class StackedLSTM(nn.Module):
    """An LSTM whose layers may have different hidden sizes (PyBlaze v1).

    With equal hidden sizes it computes what ``nn.LSTM(num_layers=...)`` computes; prefer that
    where it suffices (it is faster).

    Args:
        input_size: The dimension of the sequence's elements.
        hidden_sizes: The hidden dimension of each layer, bottom first.
        bias: Whether the cells have biases.
        batch_first: Whether inputs (and returned sequences) are ``[B, S, N]`` instead of
            ``[S, B, N]``.
        cudnn: See :class:`StackedLSTMCell`.

    Example:
        >>> lstm = StackedLSTM(4, [8, 16], batch_first=True)
        >>> x = torch.zeros(2, 5, 4)
        >>> lstm(x).shape, lstm(x, return_sequence=False).shape
        (torch.Size([2, 5, 16]), torch.Size([2, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int],
        bias: bool = True,
        batch_first: bool = False,
        cudnn: bool = True,
    ) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.stacked_cell = StackedLSTMCell(input_size, hidden_sizes, bias=bias, cudnn=cudnn)

    def forward(
        self,
        inputs: Tensor,
        initial_states: Sequence[LSTMState] | None = None,
        return_sequence: bool = True,
    ) -> Tensor:
        """Runs the sequence through the stack.

        Args:
            inputs: ``[S, B, N]`` (``[B, S, N]`` with ``batch_first``).
            initial_states: ``(hidden, cell)`` of each layer, ``[B, H_i]`` each; zeros if
                ``None``.
            return_sequence: Whether to return the top layer's output at every step or only at
                the last one.

        Returns:
            ``[S, B, H_last]`` (``[B, S, H_last]`` with ``batch_first``), or ``[B, H_last]``.
        """
        if self.batch_first:
            inputs = inputs.transpose(1, 0)
        states = initial_states
        outputs = []
        for step in inputs:
            output, states = self.stacked_cell(step, states)
            outputs.append(output)
        if not return_sequence:
            return outputs[-1]
        result = torch.stack(outputs)
        return result.transpose(1, 0) if self.batch_first else result


class _LSTMCell(nn.Module):
    """PyBlaze v1's LSTM cell (``cudnn=False``), with its parameter layout and arithmetic:
    gates in the order forget, input, candidate, output, and ``bias`` added to both the input
    and the hidden projection."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_weight = nn.Parameter(torch.empty(input_size, 4 * hidden_size))
        self.hidden_weight = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(1 / self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: LSTMState | None = None) -> LSTMState:
        if state is None:
            zeros = x.new_zeros(x.size(0), self.hidden_size)
            state = (zeros, zeros)
        hidden, memory = state
        from_input, from_hidden = x @ self.input_weight, hidden @ self.hidden_weight
        if self.bias is not None:  # added to both, as PyBlaze v1
            from_input, from_hidden = from_input + self.bias, from_hidden + self.bias
        gates = from_input + from_hidden
        forget, keep, candidate, out = gates.split(self.hidden_size, dim=1)
        memory = torch.sigmoid(forget) * memory + torch.sigmoid(keep) * torch.tanh(candidate)
        return torch.sigmoid(out) * torch.tanh(memory), memory
