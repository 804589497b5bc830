"""``kd``: sequence-level knowledge distillation (Kim & Rush 2016; the paper's Sec. 3.2): T is an
AT teacher's beam output for the source, read from a ``mple distill`` directory (``--kd DIR``).

The loss is MLE on T, as for ``raw``; what differs is the data.  The raw targets and extra
references stay with the dataset (``{split}.raw.tgt``/``.raw.refN`` in the KD directory, and the
``--data`` directory itself), so L_target and BLEU are still measured against real translations.
"""

from __future__ import annotations

from pathlib import Path

from ..data import Split, load_dataset
from .target import TargetProxy


class KDTarget(TargetProxy):
    """T is the teacher's output for the source (the batch's target comes from the KD data)."""

    name = "kd"


def read_kd_split(kd_dir: str | Path, split: Split) -> list[str]:
    """The teacher outputs of ``kd_dir`` for ``split`` (one line per sentence of ``split``).

    Raises:
        FileNotFoundError: the KD directory lacks the split.
        ValueError: its sources differ from ``split``'s (another corpus, or another order) --
            named with the first differing line.
    """
    kd_dir = Path(kd_dir)
    if not (kd_dir / f"{split.name}.tgt").is_file():
        raise FileNotFoundError(f"--kd {kd_dir} has no {split.name} split ({split.name}.tgt); distill it "
                                f"with mple distill --splits {split.name}")
    kd = load_dataset(kd_dir, splits=(split.name,))[split.name]
    if len(kd) != len(split):
        raise ValueError(f"--kd {kd_dir}: its {split.name} split has {len(kd)} sentences but the training "
                         f"data's has {len(split)}; distill the same --data")
    for i, (a, b) in enumerate(zip(kd.src, split.src)):
        if a != b:
            raise ValueError(f"--kd {kd_dir}: source line {i + 1} of its {split.name} split differs from the "
                             f"training data's ({a[:40]!r} vs {b[:40]!r}); distill the same --data")
    return list(kd.tgt)
