"""The benchmark's figures as a table and a plot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["format_table", "save_plot"]


def format_table(result: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"Benchmark: {result['arch']} ({result['model_id']}) on {result['device']} ({result['device_name']}), "
        f"{result['n_images']} images, batch {result['batch_size']}, {result['workers']} {result['parallel']}, "
        f"{result['precision']}",
        "",
        f"{'indexing':<38} {'images/s':>10} {'vs per-image':>13} {'peak RAM MB':>12}",
    ]
    per_image = result["naive_per_image_ips"]
    rows = [
        ("naive per-image loop", result["naive_per_image_ips"], result.get("naive_per_image_peak_mb")),
        ("naive single call (whole list)", result["naive_single_call_ips"], result.get("naive_single_call_peak_mb")),
        ("pipeline", result["pipeline_ips"], result.get("pipeline_peak_mb")),
        (f"model-only ceiling (batch {result['model_only_batch']})", result["model_only_ips"], None),
        (f"preprocess ceiling ({result['preprocess_ceiling_workers']})", result["preprocess_ceiling_ips"], None),
        ("re-index from cache", result["n_images"] / result["reindex_s"], None),
    ]
    for name, ips, mb in rows:
        memory = f"{mb:>12.0f}" if mb is not None else f"{'':>12}"
        lines.append(f"{name:<38} {ips:>10.1f} {ips / per_image:>12.1f}x {memory}")
    if result.get("parallel") == "processes":
        lines.append("(peak RAM is the main process's; each worker process holds a few chunks of 32 images)")
    lines += [
        "",
        f"pipeline: {result['pipeline_vs_model_only']:.0%} of the model-only ceiling, "
        f"{result['pipeline_vs_bound']:.0%} of the lower ceiling, "
        f"{result['pipeline_vs_single_call']:.2f}x the single call; "
        f"same vectors as the naive path (min cosine {result['pipeline_vs_naive_min_cosine']:.4f})",
        f"re-index of the unchanged folder: {result['first_index_s']:.2f} s -> {result['reindex_s']:.3f} s "
        f"({result['reindex_speedup']:.0f}x, {result['reindex_embedded']} embedded); "
        f"10 new images -> {result['added_10_embedded']} embedded",
        "",
        f"query latency (text embedding {result['text_embed_ms']:.1f} ms + search), ms per query:",
        f"{'vectors':>10} {'exact fp32':>11} {'exact fp16':>11} {'FAISS':>9} {'recall@10':>10}  FAISS index",
    ]
    for n, ms in result["search_ms"].items():
        faiss_ms = result.get("faiss_search_ms", {}).get(n)
        recall = result.get("faiss_recall_at_10", {}).get(n)
        lines.append(
            f"{int(n):>10,} {ms:>11.2f} {result['float16_search_ms'][n]:>11.2f} "
            f"{faiss_ms if faiss_ms is not None else float('nan'):>9.2f} "
            f"{recall if recall is not None else float('nan'):>10.3f}  {result.get('faiss_method', {}).get(n, '-')}"
        )
    return "\n".join(lines)


def save_plot(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Two panels: indexing speed by method, and search time against index size."""
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    names = ["per-image\nloop", "single\ncall", "pipeline", "model-only\nceiling", "preprocess\nceiling"]
    values = [result[k] for k in ("naive_per_image_ips", "naive_single_call_ips", "pipeline_ips")]
    values += [result["model_only_ips"], result["preprocess_ceiling_ips"]]
    bars = left.bar(names, values, color=["#95A5A6", "#95A5A6", "#2ECC71", "#3498DB", "#3498DB"])
    left.bar_label(bars, fmt="%.0f", fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("images per second (log scale)")
    left.set_title(f"Indexing {result['n_images']} images: {result['arch']} on {result['device']}")
    sizes = [int(n) for n in result["search_ms"]]
    right.loglog(sizes, list(result["search_ms"].values()), "o-", label="exact, float32")
    right.loglog(sizes, list(result["float16_search_ms"].values()), "s--", label="exact, float16")
    if result.get("faiss_search_ms"):
        right.loglog(sizes, list(result["faiss_search_ms"].values()), "^-", label="FAISS")
    right.set_xlabel("vectors in the index")
    right.set_ylabel("ms per query (search only)")
    right.set_title(f"Search (text embedding adds {result['text_embed_ms']:.1f} ms)")
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
