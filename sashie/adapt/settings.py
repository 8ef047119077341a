"""The settings of one adaptation run: one definition of every default (the CLI's options,
the HTTP API's request and `lib.versions.adapt` all take theirs from here)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import SashieError


@dataclass(frozen=True)
class AdaptSettings:
    epochs: int = 3
    batch: int = 64
    # The text encoder's learning rate. The paper's 5e-5 barely moves a word in the few dozen
    # steps that a few hundred pairs give; 1e-3 with the anchors below learns it (README).
    lr: float = 1e-3
    # The adapter's: it starts as the identity; at 1e-3 it teaches a little more and costs
    # the concepts the model already knew 3-4 points of P@10 (README).
    adapter_lr: float = 1e-4
    ratio: float = 0.2  # R, CLIP-Adapter's residual blend
    train_adapter: bool = True
    train_text: bool = True
    keep_weight: float = 10.0  # how strongly the rest of the collection stays where it was
    min_steps: int = 100  # epochs are repeated until at least this many steps were taken
    negatives: int = 4096  # other items' vectors each caption is told apart from, a step
    anchor_weight: float = 100.0  # how strongly the model's own words keep their meaning
    # The captioned pictures, remembered: a query for a taught caption also ranks items by
    # their likeness to its examples (memory.py); 0 leaves them out.
    example_weight: float = 1.0
    example_sharpness: float = 5.0
    # ParaCLIP (paraphrase.py): the captions' paraphrases x' and x'' also train the text
    # encoder, InfoNCE(image, x'') + InfoNCE(x, x') + InfoNCE(x', x''), so that other
    # wordings of a caption find the same pictures. `teach` keeps the image-caption term
    # (caption teaching); without it only the paraphrase terms train the text encoder.
    paraphrase: bool = False
    teach: bool = True
    paraphrase_weight: float = 1.0
    paraphrase_terms: tuple[str, ...] = ("image", "first", "second")
    # What the version is for: "text" (teach the captions' words) or "images" (MCIP,
    # image_tuning.py: image-to-image search, text search kept by the captions' locked text
    # vectors). ArcMargin's scale and angular margin (radians) for "images".
    target: str = "text"
    arc_scale: float = 30.0
    arc_margin: float = 0.2
    caption_weight: float = 1.0  # of the multi-caption ArcMargin term
    # Re-alignment (MCIP's Re-A): after the image side, the text encoder is tuned towards
    # the new image vectors (the "text" recipe with the adapter fixed)
    realign: bool = False
    seed: int = 0

    @property
    def kind(self) -> str:
        """What a version made with these settings learnt, in a person's words: "captions",
        "captions + paraphrase", "paraphrase", "images" or "images + realign"."""
        if self.target == "images":
            return "images + realign" if self.realign else "images"
        return " + ".join(
            name for name, on in (("captions", self.teach), ("paraphrase", self.paraphrase)) if on
        )

    @property
    def parts(self) -> str:
        """What was trained: "adapter + text encoder", "adapter" or "text encoder"."""
        return " + ".join(
            name
            for name, on in (("adapter", self.train_adapter), ("text encoder", self.train_text))
            if on
        )

    @classmethod
    def choose(cls, *, only: str | None = None, **values) -> AdaptSettings:
        """Settings from a person's choices (the CLI's options, the HTTP API's request), the
        parts to train by one rule: the adapter unless `only="text"` or the captions are not
        taught; the text encoder unless `only="adapter"`, when the target is text or the
        version re-aligns."""
        target = values.get("target", cls.target)
        teach = values.get("teach", cls.teach)
        realign = values.get("realign", cls.realign)
        return cls(
            train_adapter=only != "text" and teach,
            train_text=only != "adapter" and (target == "text" or realign),
            **values,
        )

    @classmethod
    def from_record(cls, settings: dict) -> AdaptSettings:
        """The settings a version's record (version.json) holds; fields this sashie does not
        know are left out, missing ones take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in settings.items() if k in known}
        if isinstance(values.get("paraphrase_terms"), list):
            values["paraphrase_terms"] = tuple(values["paraphrase_terms"])
        return cls(**values)

    def check(self) -> None:
        if self.epochs < 1 or self.batch < 2 or self.min_steps < 0 or self.negatives < 0:
            raise SashieError(
                "adapt needs --epochs >= 1, --batch >= 2, --min-steps >= 0 and --negatives >= 0"
            )
        if self.keep_weight < 0 or self.anchor_weight < 0 or self.example_weight < 0:
            raise SashieError("--keep-weight, --anchor-weight and --example-weight must be >= 0")
        if self.example_sharpness <= 0:
            raise SashieError("--example-sharpness must be positive")
        if not 0.0 <= self.ratio <= 1.0:
            raise SashieError("--ratio must be between 0 and 1")
        if self.lr <= 0 or self.adapter_lr <= 0:
            raise SashieError("learning rates must be positive")
        if not (self.train_adapter or self.train_text):
            raise SashieError("nothing to train: keep the adapter, the text encoder or both")
        if self.target not in ("text", "images"):
            raise SashieError("--for must be text or images")
        if self.target == "images" and (self.paraphrase or not self.train_adapter):
            raise SashieError(
                "--for images trains the visual adapter alone: no --paraphrase, no --no-adapter"
            )
        if self.realign and self.target != "images":
            raise SashieError("--realign goes with --for images")
        if self.arc_scale <= 0 or not 0 <= self.arc_margin < 1.5 or self.caption_weight < 0:
            raise SashieError(
                "--arc-scale must be positive, --arc-margin in [0, 1.5) and --caption-weight >= 0"
            )
        if not (self.teach or self.paraphrase):
            raise SashieError("nothing to learn: teach the captions, their paraphrases or both")
        if not self.teach and self.train_adapter:
            raise SashieError(
                "paraphrases alone tune the text encoder only (ParaCLIP keeps the image side "
                "frozen): turn the adapter off"
            )
        if self.paraphrase and not self.train_text:
            raise SashieError("--paraphrase tunes the text encoder: do not turn it off")
        if self.paraphrase_weight < 0 or not set(self.paraphrase_terms) <= {
            "image",
            "first",
            "second",
        }:
            raise SashieError(
                "--paraphrase-weight must be >= 0 and the terms some of image, first, second"
            )


DEFAULTS = AdaptSettings()
