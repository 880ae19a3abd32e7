"""Behaviour tuning of a language model, and item embedding tables initialised from it.

Qu et al., "The Elephant in the Room: Rethinking the Usage of Pre-trained Language Model in
Sequential Recommendation" (RecSys 2024) find that a PLM helps an ID-based recommender most, and
at no serving cost, when it is first tuned on user behaviour and its item vectors then only
*initialise* the item ID embeddings; vectors of an untuned PLM used the same way do not help
(their Table 3, "LF" vs "PT"/"FT"). :func:`behavior_tune` is that tuning step, with a
next-item contrastive objective like RECFORMER's item-item task: the text of a user's recent items
should be closer to the text of the item that came next than to the other targets in the batch.
:func:`item_init` turns the tuned model's item vectors into a table of the recommender's size.

Typical use::

    encoder = TextEncoder()
    behavior_tune(encoder, item_texts, train_sequences, epochs=2, output_dir="runs/plm-tuned")
    table = item_init(encoder.encode(item_texts), dim=64, std=0.1)  # [num_items, 64]
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graphrec.errors import ConfigError, DataError
from graphrec.text.encoder import TextEncoder
from graphrec.utils import atomic_write_json, seed_everything

WARMUP_FRACTION = 0.1
MAX_GRAD_NORM = 1.0


@dataclass
class TuneResult:
    """What :func:`behavior_tune` did.

    Attributes:
        losses: Mean InfoNCE loss of each epoch.
        num_pairs: (history, next item) pairs trained on per epoch, after ``max_pairs``.
        model_dir: Where the tuned model was saved, or ``None``.
        seconds: Wall time of the whole tuning.
    """

    losses: list[float]
    num_pairs: int
    model_dir: Path | None
    seconds: float


def behavior_tune(encoder: TextEncoder, item_texts: Sequence[str], sequences: Sequence[Sequence[int]], *,
                  history: int = 5, epochs: int = 1, batch_size: int = 32, lr: float = 5e-5,
                  temperature: float = 0.05, max_pairs: int | None = None, seed: int = 0,
                  output_dir: str | Path | None = None, progress: bool = True) -> TuneResult:
    """Fine-tune ``encoder``'s model in place so that a user's history text points at the next item's text.

    For every sequence ``s`` and position ``t >= 1`` the history is the texts of up to ``history``
    items before ``t``, most recent first, joined by the tokenizer's separator token; putting the
    most recent first means truncation to ``encoder.max_length`` drops the oldest items. With
    history vectors ``h`` and target vectors ``v`` of a batch (pooled as ``encoder`` pools), the
    loss is InfoNCE over in-batch negatives:

    .. math::
        \\mathcal{L} = -\\frac{1}{B}\\sum_b \\log
        \\frac{\\exp(\\cos(h_b, v_b)/\\tau)}{\\sum_{c:\\, i_c \\ne i_b \\lor c = b} \\exp(\\cos(h_b, v_c)/\\tau)}

    where targets of the same item ``i_c = i_b`` are left out of the negatives: they are the
    positive again, not a wrong answer. AdamW, a linear warm-up over the first 10% of steps
    then linear decay to zero, gradient norm clipped at 1.0. A batch of one pair has no negative
    and is skipped.

    Args:
        encoder: Its model is tuned in place (and :meth:`TextEncoder.weights_changed` is called).
        item_texts: The text of every item; sequences index into it.
        sequences: Each user's training items in time order (validation and test items left out).
        history: Most items before the target that form the history text.
        epochs: Passes over the pairs.
        batch_size: Pairs per step (at least 2: the other targets are the negatives).
        lr: Peak AdamW learning rate.
        temperature: ``tau`` above; small values sharpen the softmax over the batch.
        max_pairs: Train on a seeded random subset of this many pairs (bounds CPU time).
        seed: Seeds the pair subset, the shuffles and dropout.
        output_dir: After each epoch, save the model here (:meth:`TextEncoder.save`) with ``tune.json``.
        progress: Show a tqdm bar per epoch with the running loss.

    Raises:
        DataError: An item index is out of range, or the sequences yield no pairs.
        ConfigError: A setting is out of range.
    """
    for name, value, low in (("history", history, 1), ("epochs", epochs, 1), ("batch_size", batch_size, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    if max_pairs is not None and (isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 1):
        raise ConfigError(f"max_pairs: expected a positive integer or None, got {max_pairs!r}")
    for name, value in (("lr", lr), ("temperature", temperature)):
        if not value > 0:
            raise ConfigError(f"{name}: expected a positive number, got {value!r}")
    start_time = time.perf_counter()
    pairs = next_item_pairs(sequences, len(item_texts), history)
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = random.Random(seed).sample(pairs, max_pairs)
    sep = f" {encoder.tokenizer.sep_token or '[SEP]'} "
    history_texts = [sep.join(item_texts[item] for item in items) for items, _ in pairs]
    targets = torch.tensor([target for _, target in pairs])  # [P]

    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    model = encoder.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    # A last, smaller batch is a step unless it holds a single pair (skipped: no negative).
    steps_per_epoch = len(pairs) // batch_size + int(len(pairs) % batch_size >= 2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(epochs * steps_per_epoch))
    output_dir = Path(output_dir) if output_dir is not None else None
    was_training = model.training
    model.train()
    encoder.weights_changed()
    losses: list[float] = []
    try:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(pairs), generator=generator)  # [P]
            batches = [batch for batch in order.split(batch_size) if len(batch) >= 2]
            total = 0.0
            bar = tqdm(batches, desc=f"behaviour tuning {epoch}/{epochs}", leave=False,
                       disable=None if progress else True)
            for step, batch in enumerate(bar, start=1):
                batch_targets = targets[batch]  # [B]
                loss = info_nce(encoder.encode_with_grad([history_texts[i] for i in batch.tolist()]),
                                encoder.encode_with_grad([item_texts[i] for i in batch_targets.tolist()]),
                                batch_targets.to(encoder.device), temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                optimizer.step()
                scheduler.step()
                total += loss.item()
                bar.set_postfix(loss=f"{total / step:.4f}")
            bar.close()
            losses.append(total / max(len(batches), 1))
            if output_dir is not None:
                encoder.save(output_dir)
                atomic_write_json(output_dir / "tune.json", {
                    "losses": losses, "num_pairs": len(pairs), "epochs_done": epoch,
                    "settings": {"history": history, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                                 "temperature": temperature, "max_pairs": max_pairs, "seed": seed,
                                 "pooling": encoder.pooling, "max_length": encoder.max_length,
                                 "normalize": encoder.normalize},
                })
    finally:
        model.train(was_training)
    return TuneResult(losses, len(pairs), output_dir, time.perf_counter() - start_time)


def next_item_pairs(sequences: Sequence[Sequence[int]], num_items: int,
                    history: int) -> list[tuple[tuple[int, ...], int]]:
    """``(history items, most recent first; next item)`` for every position ``t >= 1`` of every sequence.

    Raises:
        DataError: An item is not an index into the ``num_items`` texts, or there is no pair at all.
    """
    if len(sequences) == 0:
        raise DataError("sequences: no sequences given; behaviour tuning needs users' item sequences")
    pairs: list[tuple[tuple[int, ...], int]] = []
    for index, sequence in enumerate(sequences):
        items = [int(item) for item in sequence]
        bad = next((item for item in items if not 0 <= item < num_items), None)
        if bad is not None:
            raise DataError(f"sequences[{index}]: item {bad} is out of range; item_texts has {num_items} "
                            f"items (valid indices 0..{num_items - 1})")
        for t in range(1, len(items)):
            pairs.append((tuple(reversed(items[max(0, t - history):t])), items[t]))
    if not pairs:
        raise DataError(f"sequences: none of the {len(sequences)} sequences has 2 or more items, so there "
                        f"is no (history, next item) pair to tune on")
    return pairs


def info_nce(history: Tensor, target: Tensor, target_ids: Tensor, temperature: float) -> Tensor:
    """In-batch InfoNCE of ``history`` ``[B, D]`` against ``target`` ``[B, D]``; row ``b`` is the positive of ``b``.

    Other rows whose ``target_ids`` equal row ``b``'s are masked out of ``b``'s negatives.
    """
    logits = torch.nn.functional.normalize(history, dim=-1) @ torch.nn.functional.normalize(target, dim=-1).T
    logits = logits / temperature  # [B, B]
    same_item = target_ids.unsqueeze(0) == target_ids.unsqueeze(1)  # [B, B]
    same_item.fill_diagonal_(False)
    logits = logits.masked_fill(same_item, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def warmup_then_decay(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up over 10% of the steps, then linear decay to zero.

    The factor of the first step is already above zero (``1 / warmup``), so no step is wasted.
    """
    warmup = max(1, int(WARMUP_FRACTION * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def item_init(item_vectors: Tensor, dim: int, std: float | None = None) -> Tensor:
    """An initial item embedding table ``[I, dim]`` from PLM item vectors ``[I, P]``.

    The vectors are centred (a PLM puts all texts in a narrow cone around a common mean, which
    would make every dot product large and alike), then, when ``P > dim``, projected onto their
    top ``dim`` principal components, which keep as much of the items' spread as a linear map to
    ``dim`` can. Each component's sign is fixed (its largest loading is positive), so the same
    vectors always give the same table. Finally the table is scaled to overall standard deviation
    ``std`` to match the scale the recommender's own initialisation would use (``None`` keeps
    the PLM's scale).

    Args:
        item_vectors: ``[I, P]`` item vectors, e.g. ``encoder.encode(item_texts)`` after :func:`behavior_tune`.
        dim: The embedding size of the recommender; at most ``P``.
        std: Target standard deviation of all entries, or ``None``.

    Raises:
        ConfigError: ``dim`` is not in ``1..P`` or ``std`` is not positive.
        DataError: ``item_vectors`` is not a 2-D table, or has no spread to rescale.
    """
    if item_vectors.dim() != 2 or item_vectors.size(0) == 0:
        raise DataError(f"item_vectors: expected a non-empty [num_items, P] table, got shape "
                        f"{tuple(item_vectors.shape)}")
    width = item_vectors.size(1)
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= width:
        raise ConfigError(f"dim: expected an integer in 1..{width} (the width of item_vectors), got {dim!r}; "
                          f"a table cannot be widened beyond the PLM's {width} dimensions")
    if std is not None and not std > 0:
        raise ConfigError(f"std: expected a positive number or None, got {std!r}")
    vectors = item_vectors.detach().double()
    centred = vectors - vectors.mean(0, keepdim=True)  # [I, P]
    if dim < width:
        # Eigenvectors of the P x P covariance: exact, deterministic, and defined even when I < dim.
        _, eigenvectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        components = eigenvectors.flip(-1)[:, :dim]  # [P, dim]
        strongest = components.abs().argmax(0)  # [dim]
        signs = torch.sign(components[strongest, torch.arange(dim)])
        centred = centred @ (components * signs)  # [I, dim]
    if std is not None:
        current = centred.std()
        if not current > 0:
            raise DataError("item_vectors: all item vectors are identical, so the table cannot be scaled to "
                            f"std={std}")
        centred = centred * (std / current)
    return centred.to(device=item_vectors.device, dtype=torch.float32)
