"""`learned`: illustrations found by a small network trained on the spread world.

The page is read at INPUT_SIDE pixels on its longer side. A fully convolutional network (an
encoder down to 1/16 with dilated layers for context, a decoder back to 1/4 with skips) marks
two things for every 4 x 4 cell: whether it lies in an illustration's box, and whether it lies
in the box's core (the box shrunk by SHRINK of its width and height on each side). Cores stay
apart where pictures nearly touch; each core is grown back through the box mask, cell by cell,
as PSENet grows its text kernels, and the grown region's bounds are the box; its score is the
core's mean probability.

Why a mask and not anchors: illustrations on book pages vary from a stamp-sized diagram to a
two-page scene and are seldom framed; a mask needs no sizes chosen in advance, trains on a few
thousand pages on a CPU, and its cores come apart where text runs between pictures.

The weights (safetensors) and config.json lie in sashie/models/sashie-regions/, with
TRAINING.json saying how they were made (`python -m sashie.eval.world.train_regions`). A
library can hold its own fine-tuned copy (`sashie regions train`, in the library's folder).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import SashieError
from ..sources.pages import PageRef
from .base import BBox, Region

INPUT_SIDE = 640
STRIDE = 4  # the mask's cell, in input pixels
SHRINK = 0.25  # each side of a box pulled in by this share of its width or height
THRESHOLD = 0.5
CERTAIN = 0.9  # a box-mask region this sure, with no core in it, is a picture's core too
MIN_CORE_CELLS = 3
MAX_GROW = 64  # cells a core may grow through the box mask
DEFAULT_MODEL = "sashie-regions"
MAX_CONFIG_BYTES = 64 << 10  # a config.json from elsewhere is read only this far


@dataclass(frozen=True)
class NetConfig:
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 96)  # 1/2, 1/4, 1/8, 1/16, context
    input_side: int = INPUT_SIDE
    shrink: float = SHRINK

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        try:
            widths = tuple(int(w) for w in data["widths"])
            config = cls(widths, int(data["input_side"]), float(data["shrink"]))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise SashieError(f"the region model's config.json is not readable ({e})") from None
        if len(widths) != 5 or not all(0 < w <= 512 for w in widths):
            raise SashieError("the region model's config.json has impossible widths")
        if not (64 <= config.input_side <= 4096 and 0 <= config.shrink < 0.5):
            raise SashieError("the region model's config.json has impossible sizes")
        return config


def build_net(config: NetConfig):
    """The network, untrained (torch is imported here, on first use)."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    w1, w2, w3, w4, w5 = config.widths

    class IllustrationNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down1 = conv(3, w1, 2)
            self.down2 = nn.Sequential(conv(w1, w2, 2), conv(w2, w2))
            self.down3 = nn.Sequential(conv(w2, w3, 2), conv(w3, w3))
            self.down4 = nn.Sequential(conv(w3, w4, 2), conv(w4, w5, dilation=2))
            self.context = nn.Sequential(conv(w5, w5, dilation=4), conv(w5, w5, dilation=8))
            self.up3 = conv(w5 + w3, w3)
            self.up2 = conv(w3 + w2, w2)
            self.head = nn.Conv2d(w2, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Logits of the illustration boxes and their cores, at 1/4 of the input's size:
            (batch, 2, height / 4, width / 4), channel 0 the cores."""
            d2 = self.down2(self.down1(x))
            d3 = self.down3(d2)
            d4 = self.context(self.down4(d3))
            up = nn.functional.interpolate(d4, size=d3.shape[-2:], mode="nearest")
            u3 = self.up3(torch.cat([up, d3], 1))
            up = nn.functional.interpolate(u3, size=d2.shape[-2:], mode="nearest")
            return self.head(self.up2(torch.cat([up, d2], 1)))

    return IllustrationNet()


def to_input(image: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """The page as the network reads it: RGB float32 CHW, longer side `side`, padded to a
    multiple of 16; and the scale from page pixels to input pixels."""
    scale = side / max(image.size)
    size = (max(16, round(image.width * scale)), max(16, round(image.height * scale)))
    # a large page is first averaged by whole blocks in Pillow's own storage, down to at
    # least twice the input (a 6000-pixel page: no full-size copy; a spread: as it is)
    factor = max(image.size) // (2 * side)
    if factor > 1 and image.mode in ("RGB", "L"):
        image = image.reduce(factor)
    rgb = np.asarray(image.convert("RGB"))
    if scale < 0.5:  # thin lines would fade away: thicken the ink at twice the size first
        double = cv2.resize(rgb, (size[0] * 2, size[1] * 2), interpolation=cv2.INTER_AREA)
        rgb = cv2.erode(double, np.ones((3, 3), np.uint8))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    pad_h, pad_w = -size[1] % 16, -size[0] % 16
    small = np.pad(small, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return (small.transpose(2, 0, 1) - 0.5) / 0.25, scale


def box_targets(
    boxes: list[BBox], scale: float, shape: tuple[int, int], shrink: float
) -> np.ndarray:
    """The training target at the mask's resolution: channel 0 each box's core, channel 1
    the boxes."""
    target = np.zeros((2, *shape), np.float32)
    for x0, y0, x1, y1 in boxes:
        for channel, share in ((0, shrink), (1, 0.0)):
            dx, dy = (x1 - x0) * share, (y1 - y0) * share
            cx0, cy0 = (x0 + dx) * scale / STRIDE, (y0 + dy) * scale / STRIDE
            cx1, cy1 = (x1 - dx) * scale / STRIDE, (y1 - dy) * scale / STRIDE
            r0, c0 = max(0, round(cy0)), max(0, round(cx0))
            target[channel, r0 : max(r0 + 1, round(cy1)), c0 : max(c0 + 1, round(cx1))] = 1
    return target


def mask_boxes(
    probability: np.ndarray, scale: float, page_size: tuple[int, int]
) -> list[tuple[BBox, float]]:
    """Boxes in page pixels from the (core, box) probabilities: each core grown through the
    box mask to the cells nearer to it than to any other core. The network often leaves
    the core of a small figure dark while its box mask is near certain, and the box masks of
    small figures stacked with captions between them join: so a region where the box mask
    is at least CERTAIN, and no core lies, is taken as a core as well."""
    cores = probability[0] >= THRESHOLD
    inside = (probability[1] >= THRESHOLD) | cores
    certain = (probability[1] >= CERTAIN).astype(np.uint8)
    _, parts = cv2.connectedComponents(certain, connectivity=4)
    cores |= (parts > 0) & ~np.isin(parts, np.unique(parts[cores]))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        cores.astype(np.uint8), connectivity=4
    )
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < MIN_CORE_CELLS:
            labels[labels == label] = 0
    grown = labels.astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(MAX_GROW):
        reach = cv2.dilate(grown, kernel)
        new = (grown == 0) & inside & (reach > 0)
        if not new.any():
            break
        grown[new] = reach[new]
    found = []
    for label in range(1, count):
        ys, xs = np.nonzero(grown == label)
        if len(xs) == 0:
            continue
        score = float(probability[0][labels == label].mean())
        box = (
            max(0, int(xs.min() * STRIDE / scale)),
            max(0, int(ys.min() * STRIDE / scale)),
            min(page_size[0], int(np.ceil((xs.max() + 1) * STRIDE / scale))),
            min(page_size[1], int(np.ceil((ys.max() + 1) * STRIDE / scale))),
        )
        found.append((box, score))
    return found


def model_folder(name_or_path: str | Path = DEFAULT_MODEL) -> Path:
    """A shipped model by name, or a folder holding config.json and model.safetensors."""
    if str(name_or_path) == DEFAULT_MODEL:
        return Path(str(resources.files("sashie") / "models" / DEFAULT_MODEL))
    return Path(name_or_path)


def save_model(net, config: NetConfig, folder: Path) -> None:
    """The weights as safetensors and the config as JSON (no pickle)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n")


def load_model(folder: Path):
    """The network and its config from a folder written by save_model, ready for inference."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        with open(folder / "config.json", "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ValueError(f"config.json is over {MAX_CONFIG_BYTES} bytes")
        config = NetConfig.from_dict(json.loads(text))
        state = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError, SafetensorError) as e:
        raise SashieError(f"no region model in {folder} ({e})") from None
    net = build_net(config)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise SashieError(f"the region model in {folder} does not fit its config ({e})") from None
    return net.eval(), config


class LearnedDetector:
    """Illustration boxes from the trained network (the shipped one, or `model=FOLDER`)."""

    name = "learned"

    def __init__(self, model: str | Path = DEFAULT_MODEL) -> None:
        self.folder = model_folder(model)
        self._net = None
        self._config: NetConfig | None = None

    def _loaded(self):
        if self._net is None:
            self._net, self._config = load_model(self.folder)
        return self._net, self._config

    def probabilities(self, image: Image.Image) -> tuple[np.ndarray, float]:
        """The (core, box) probability masks of a page and the page-to-input scale."""
        import torch

        net, config = self._loaded()
        array, scale = to_input(image, config.input_side)
        with torch.inference_mode():
            logits = net(torch.from_numpy(array)[None])
        return torch.sigmoid(logits)[0].numpy(), scale  # (2, height / 4, width / 4)

    def detect(self, image: Image.Image, page: PageRef | None) -> list[Region]:
        probability, scale = self.probabilities(image)
        return [
            Region(box, self.name, score)
            for box, score in mask_boxes(probability, scale, image.size)
        ]
