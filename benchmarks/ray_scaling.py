"""Documents per second of ``index --ray`` with 1 and 2 encoder workers against a single-process ``index``.

One run, same documents, same model, fresh collections: the single process goes through
:meth:`ChromaStore.add_documents` (model loaded beforehand, not timed); each Ray run goes through
:func:`reasonembed_rag.distributed.index_with_ray` on a local cluster of ``--cpus`` CPUs. Two rates are printed for
Ray: end to end (actor start-up and model loading included) and steady (after the first written batch), and the
ratios against the single process and against one Ray worker. Goal: 2 workers >= 1.6x one worker (steady) when both
cores are free.

Ray binds to every interface; on a machine that must keep traffic on loopback run it in a network namespace:

    unshare -n bash -c 'ip link set lo up; RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 \\
        python benchmarks/ray_scaling.py --docs 3000'
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from reasonembed_rag.distributed import connect, index_with_ray
from reasonembed_rag.encoder import ReasonEmbedEncoder
from reasonembed_rag.store import ChromaStore


def corpus(count: int) -> list[dict[str, str]]:
    """CHAMP's concepts, hints and problems repeated under distinct ids (restated), else numbered sentences."""
    try:
        import champ_dataset

        data = champ_dataset.load("v0")
        base = [item.text for items in (data.concepts, data.hints, data.problems) for item in items.values()]
    except ImportError:
        base = [f"Sentence {n} on topic {n % 13}: a document about numbers, proofs and their use." for n in range(500)]
    return [{"id": f"d{n}", "content": f"({n // len(base)}) {base[n % len(base)]}"} for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--batch-size", type=int, default=128, help="documents per actor call")
    args = parser.parse_args()

    documents = corpus(args.docs)
    folder = tempfile.mkdtemp(prefix="ray-scaling-")
    encoder = ReasonEmbedEncoder.from_pretrained(args.model)
    store = ChromaStore("single", encoder, chroma=folder)
    start = time.perf_counter()
    store.add_documents(documents, show_progress=False)
    single = len(documents) / (time.perf_counter() - start)
    print(f"{len(documents)} documents, {args.model}, {os.cpu_count()} CPUs on this machine, Ray cluster {args.cpus}")
    print(f"single process index: {single:8.1f} documents/s (torch threads: {torch.get_num_threads()})")
    # Ray gives each CPU actor one thread (OMP_NUM_THREADS=1); the same single process on one thread separates the
    # cost of Ray from the cost of threading.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    store = ChromaStore("single1", encoder, chroma=folder)
    start = time.perf_counter()
    store.add_documents(documents, show_progress=False)
    single_one = len(documents) / (time.perf_counter() - start)
    torch.set_num_threads(threads)
    print(f"single process index: {single_one:8.1f} documents/s (torch threads: 1)")

    connect("local", num_cpus=args.cpus, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="ray-"))
    rates: dict[int, tuple[float, float]] = {}
    for workers in (1, 2):
        target = ChromaStore(f"ray{workers}", encoder, chroma=folder)
        job = index_with_ray(
            target,
            documents,
            model=args.model,
            workers=workers,
            batch_size=args.batch_size,
            write_batch_size=args.batch_size,
            show_progress=False,
        )
        assert job.report.added == len(documents), job.report
        rates[workers] = (job.documents_per_second, job.steady_documents_per_second)
        print(
            f"ray {workers} worker(s):        {job.documents_per_second:8.1f} documents/s end to end "
            f"(start-up {job.startup_seconds:.1f} s), {job.steady_documents_per_second:8.1f} steady"
        )
    (end1, steady1), (end2, steady2) = rates[1], rates[2]
    print(f"ratio single 1 thread / single {single_one / single:.2f}x")
    print(f"ratios steady: 1 worker / single {steady1 / single:.2f}x, 2 workers / single {steady2 / single:.2f}x, "
          f"2 workers / 1 worker {steady2 / steady1:.2f}x")
    print(f"ratios end to end: 1 worker / single {end1 / single:.2f}x, 2 workers / single {end2 / single:.2f}x, "
          f"2 workers / 1 worker {end2 / end1:.2f}x")


if __name__ == "__main__":
    main()
