"""Training the `learned` detector's network: pages with illustration boxes in, weights out.

Used by the trainer of the shipped weights (sashie/eval/world/train_regions.py, on the world)
and by a library's own fine-tune (`sashie regions train`, on a curator's boxes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from .base import BBox
from .learned import STRIDE, NetConfig, box_targets, build_net, to_input


def training_sample(
    image: Image.Image, boxes: Sequence[Sequence[int]], config: NetConfig
) -> tuple[np.ndarray, np.ndarray]:
    """A page as uint8 CHW at the network's size, and its (core, box) target."""
    array, scale = to_input(image, config.input_side)
    pixels = np.clip(array * 0.25 * 255 + 127.5, 0, 255).astype(np.uint8)
    shape = (array.shape[1] // STRIDE, array.shape[2] // STRIDE)
    bboxes: list[BBox] = [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes]
    return pixels, box_targets(bboxes, scale, shape, config.shrink)


def batch(images, targets, rng: np.random.Generator, size: int, crop: int):
    """A batch of random crops (aligned to the mask's cells), flipped and toned at random."""
    xs, ys = [], []
    for i in rng.integers(0, len(images), size):
        image, target = images[i], targets[i]
        h, w = image.shape[1:]
        ch, cw = min(crop, h), min(crop, w)
        top = int(rng.integers(0, (h - ch) // 16 + 1)) * 16
        left = int(rng.integers(0, (w - cw) // 16 + 1)) * 16
        x = image[:, top : top + ch, left : left + cw].astype(np.float32) / 255
        y = target[:, top // STRIDE : (top + ch) // STRIDE, left // STRIDE : (left + cw) // STRIDE]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        if rng.random() < 0.3:
            x = np.repeat(x.mean(0, keepdims=True), 3, 0)
        x = x * rng.uniform(0.8, 1.2, (3, 1, 1)) + rng.uniform(-0.1, 0.1)
        xs.append((np.clip(x, 0, 1) - 0.5) / 0.25)
        ys.append(y)
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def train(
    images, targets, config: NetConfig, *, steps: int, batch_size: int, crop: int, lr: float,
    seed: int, device: str = "cpu", net=None, progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
):  # fmt: skip
    """Train (or go on training `net`) and return it with its loss curve; `on_step(step,
    loss)` is told of each step."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = (net or build_net(config)).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    losses = []
    bar = tqdm(range(steps), desc="training", unit="step", disable=not progress)
    for _ in bar:
        x, y = batch(images, targets, rng, batch_size, crop)
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        logits = net(x)
        p = torch.sigmoid(logits)
        overlap = (p * y).sum((0, 2, 3))
        dice = 1 - (2 * overlap + 1) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + dice.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(len(losses), losses[-1])
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return net.cpu().eval(), losses
