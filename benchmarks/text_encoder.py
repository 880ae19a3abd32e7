"""Text encoding throughput of the packaged all-MiniLM-L6-v2, and what the feature cache saves.

Encodes N texts (2,000 synthetic product titles by default, or one text per line of ``--texts``)
with :class:`graphrec.text.TextEncoder` and prints sentences per second for each batch size,
then the time of a first encode (model hashing, encoding, writing the cache) against a second
encode of the same texts in the same process (a cache hit), both against a temporary cache
folder. The machine line (CPU count, torch threads, device) says where the numbers came from.

Usage:
    python benchmarks/text_encoder.py [--texts FILE] [--num-texts 2000] [--batch-sizes 16 64]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import torch

from graphrec.text import TextEncoder, default_model_path

ADJECTIVES = ["waterproof", "lightweight", "organic", "vintage", "wireless", "stainless steel", "handmade",
              "ergonomic", "compact", "heavy-duty", "soft cotton", "rechargeable", "non-stick", "leather"]
PRODUCTS = ["running shoes", "backpack", "coffee grinder", "desk lamp", "yoga mat", "bluetooth speaker",
            "frying pan", "winter jacket", "guitar strings", "tea kettle", "phone case", "watercolor set",
            "hiking boots", "notebook", "kitchen knife", "baby blanket", "dog leash", "board game"]
DETAILS = ["for men", "for women", "for kids", "with free shipping", "in black", "in navy blue",
           "2-pack", "large size", "with carrying case", "gift edition", "for outdoor use", "10 inch",
           "with lifetime warranty", "easy to clean", "made in Italy", "for beginners and professionals"]


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """Product-title-like sentences of 4 to 20 words, so batches see realistic length spread."""
    rng = random.Random(seed)
    texts = []
    for index in range(count):
        words = [rng.choice(ADJECTIVES), rng.choice(PRODUCTS)]
        words += rng.sample(DETAILS, rng.randint(0, 3))
        texts.append(f"{' '.join(words)}, model {index}")
    return texts


def read_texts(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    texts = [line for line in lines if line]
    if not texts:
        raise SystemExit(f"{path}: no non-empty lines; expected one text per line")
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Sentences per second of the packaged all-MiniLM-L6-v2 per batch size, and the "
                    "first-run vs cached second-run time of TextEncoder.encode.")
    parser.add_argument("--texts", type=Path, metavar="FILE",
                        help="file with one text per line (default: synthetic product titles)")
    parser.add_argument("--num-texts", type=int, default=2000,
                        help="synthetic texts to encode without --texts (default: %(default)s)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64], metavar="N",
                        help="batch sizes to time (default: 16 64)")
    parser.add_argument("--max-length", type=int, default=128,
                        help="tokens per text at most (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: %(default)s)")
    parser.add_argument("--model", metavar="DIR",
                        help="a local model folder (default: the packaged all-MiniLM-L6-v2)")
    args = parser.parse_args()

    texts = read_texts(args.texts) if args.texts else synthetic_texts(args.num_texts)
    encoder = TextEncoder(args.model, max_length=args.max_length, device=args.device, progress=False)
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads, device {encoder.device}"
          + (f" ({torch.cuda.get_device_name(encoder.device)})" if encoder.device.type == "cuda" else ""))
    print(f"model: {args.model or default_model_path()} (dim {encoder.dim}), {len(texts)} texts, "
          f"mean {sum(map(len, texts)) / len(texts):.0f} characters, max_length {args.max_length}")
    encoder.encode(texts[:32])  # warm-up: first-call allocations and kernel selection are not throughput

    for batch_size in args.batch_sizes:
        encoder.batch_size = batch_size
        _sync(encoder.device)
        start = time.perf_counter()
        encoder.encode(texts)
        _sync(encoder.device)
        seconds = time.perf_counter() - start
        print(f"batch {batch_size:>4}: {len(texts) / seconds:8.1f} sentences/s ({seconds:.2f} s)")

    with tempfile.TemporaryDirectory() as cache_dir:
        cached = TextEncoder(args.model, max_length=args.max_length, device=args.device, progress=False,
                             batch_size=max(args.batch_sizes), cache_dir=cache_dir)
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            cached.encode(texts)
            timings.append((time.perf_counter() - start, cached.last_from_cache))
        (first, first_hit), (second, second_hit) = timings
        print(f"cache: first run {first:.2f} s (from cache: {first_hit}; includes hashing the weights), "
              f"second run {second * 1000:.1f} ms (from cache: {second_hit}), {first / second:.0f}x faster")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
