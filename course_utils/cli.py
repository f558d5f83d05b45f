"""The command line: ``python -m course_utils ...`` (also installed as ``image-rag``).

Every user error is one line on stderr and exit code 2; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .errors import CourseError
from .indexing import ENGINES, PARALLEL
from .prompts import CONDITIONS, METADATA_VIEWS
from .retrieval import TEXT_WEIGHT

__all__ = ["build_parser", "main"]

CONTEXT_HELP = (
    "what the LLM is sent: none, metadata (rows), images (pictures and their names), both (default), "
    "all-images (every catalog image) or random (k random products)"
)
METADATA_HELP = "full: every catalog field; shop: name, price and category only (no colour, shape or pattern)"
PARALLEL_HELP = "decode images in threads or worker processes (default auto: processes next to a CUDA GPU)"
STORE_HELP = "numpy (default), chroma:PATH or http://HOST:PORT (a Chroma server); default: COURSE_INDEX or numpy"


def _add_index_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", help="an index file from `index` (default: the cached default catalog)")
    parser.add_argument("--store", help=STORE_HELP)
    parser.add_argument("-k", type=int, default=3, help="how many products to retrieve (default 3)")
    parser.add_argument("--model", help="CLIP model for the default index (hub name or folder)")
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    parser.add_argument(
        "--plan",
        choices=("hybrid", "none"),
        default="hybrid",
        help="hybrid: CLIP plus price/category rules (default); none: plain CLIP top-k",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils",
        description="Image RAG course: render the catalog, index it with CLIP, search and ask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("catalog", help="render the catalog images and write catalog.json beside them")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--catalog", help="a catalog.json to render (default: the course's 8 products)")
    source.add_argument("--generate", type=int, metavar="N", help="render N random products instead")
    p.add_argument("--seed", type=int, default=0, help="the random catalog of --generate (default 0)")
    p.add_argument("--out", default="catalog", help="output folder (default: ./catalog)")

    p = sub.add_parser("index", help="embed a folder of catalog images into an index file")
    p.add_argument("images", nargs="?", help="folder with the images and catalog.json (default: render the catalog)")
    p.add_argument("--catalog", help="catalog.json describing the images (default: IMAGES/catalog.json)")
    p.add_argument("--out", default="index.npz", help="index file to write (default: index.npz)")
    p.add_argument("--store", help=STORE_HELP)
    p.add_argument("--model", help="CLIP model: hub name or folder (default: COURSE_CLIP_MODEL or ViT-B/32)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: per device)")
    p.add_argument("--workers", type=int, help="threads or processes decoding images (default: per device)")
    p.add_argument("--parallel", choices=PARALLEL, default="auto", help=PARALLEL_HELP)
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this machine's pipeline (default); ray: a Ray Data actor pool (pip install 'ray[data]'; "
        "joins the cluster RAY_ADDRESS names, else starts Ray here)",
    )
    p.add_argument("--actors", type=int, help="--engine ray: model copies (default: one per CPU, or per GPU)")
    p.add_argument(
        "--no-cache", dest="cache", action="store_false", help="embed every image again instead of reusing the cache"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("search", help="find the catalog images that match a text query, a picture, or both")
    p.add_argument("query", nargs="?", help="what you are looking for; with --image, words that change the picture")
    p.add_argument("--image", metavar="PATH", help="search with this picture (plus QUERY's words, if given)")
    p.add_argument(
        "--weight", type=float, help=f"how much QUERY's words count next to --image, 0..1 (default {TEXT_WEIGHT})"
    )
    _add_index_args(p)

    p = sub.add_parser("ask", help="answer a question from the retrieved images (Image RAG)")
    p.add_argument("question", nargs="?", help="what the shopper asks; with --image it may be left out")
    p.add_argument(
        "--image", metavar="PATH", help="the shopper's photo: retrieve with it, and send it to the LLM first"
    )
    p.add_argument("--no-rag", action="store_true", help="ask the LLM without any catalog context (--context none)")
    p.add_argument("--context", choices=CONDITIONS, default="both", help=CONTEXT_HELP)
    p.add_argument("--metadata", choices=METADATA_VIEWS, default="full", help=METADATA_HELP)
    p.add_argument("--seed", type=int, default=0, help="the products of --context random (default 0)")
    _add_index_args(p)

    p = sub.add_parser("ablation", help="score answers under every evidence condition, per question type")
    p.add_argument("--catalog", help="catalog.json (default: the course's 8 products)")
    p.add_argument("--metadata", choices=METADATA_VIEWS, default="shop", help=METADATA_HELP + " (default here: shop)")
    p.add_argument("--questions", help='JSONL file: {"query": ..., "relevant": [...], "type": ...} per line')
    p.add_argument("--provider", help="LLM providers to try, e.g. gemini or groq,offline (default: the cascade)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="conditions to run, comma-separated")
    p.add_argument("--per-type", type=int, help="ask at most this many questions of each type")
    p.add_argument("-k", type=int, default=3, help="how many products to retrieve (default 3)")
    p.add_argument("--seed", type=int, default=0, help="the products of the random condition (default 0)")
    p.add_argument("--model", help="CLIP model for retrieval (hub name or folder)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("eval", help="measure retrieval quality on labelled queries")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--queries", help='JSONL file: {"query": ..., "relevant": [...]} per line')
    source.add_argument("--generate", action="store_true", help="generate labelled queries from the catalog")
    source.add_argument(
        "--image-queries",
        action="store_true",
        help="search by picture: perturbed catalog images, picture + words, refusal of absent looks",
    )
    p.add_argument("--catalog", help="catalog.json (default: the course's 8 products)")
    p.add_argument("--model", help="CLIP model: hub name or folder")
    p.add_argument("--device", help="cpu, cuda or mps")
    p.add_argument("--seed", type=int, default=1, help="--image-queries: seed of the perturbations (default 1)")
    p.add_argument("--out", help="--image-queries: also write the JSON report to this file")
    p.add_argument(
        "--as-given",
        action="store_true",
        help="--image-queries: embed each picture as given, without the framed and turned views (the baseline)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("bench", help="time indexing (naive loops, the pipeline, the cache) and search at scale")
    p.add_argument(
        "--arch",
        choices=("mini", "vit-b-32"),
        default="mini",
        help="mini: the bundled mini-CLIP (default); vit-b-32: the ViT-B/32 architecture with random weights",
    )
    p.add_argument("--model", help="time this CLIP model (hub name or folder) instead of --arch")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--n-images", type=int, default=256, help="generated images to index (default 256)")
    p.add_argument("--sizes", default="1000,10000,100000,1000000", help="index sizes for the search timings")
    p.add_argument("--batch-size", type=int, help="images per forward pass for the pipeline (default: per device)")
    p.add_argument("--workers", type=int, help="decoding threads or processes for the pipeline (default: per device)")
    p.add_argument("--parallel", choices=PARALLEL, default="auto", help=PARALLEL_HELP)
    p.add_argument("--faiss-method", choices=("auto", "flat", "ivf"), default="auto", help="FAISS index to time")
    p.add_argument("--repeat", type=int, default=1, help="measure each method this many times, keep the best")
    p.add_argument(
        "--photos",
        type=int,
        metavar="N",
        help="time indexing N generated phone photos (12 MP JPEGs, EXIF-rotated ones, PNG screenshots) instead",
    )
    p.add_argument(
        "--chroma",
        metavar="SIZES",
        help="also time Chroma, embedded and via a local server, at these sizes (e.g. 10000,100000; needs chromadb)",
    )
    p.add_argument("--out", help="write the JSON here and the plot beside it (default: plot in the cache folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("train-mini-clip", help="train the small offline CLIP from scratch")
    p.add_argument("--out", required=True, help="folder for the trained model")
    p.add_argument("--steps", type=int, help="training steps (default: what made the shipped weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda or mps")
    return parser


def _load_index(args: argparse.Namespace):
    from .embeddings import load_clip
    from .index import ImageIndex
    from .store import open_store, parse_store
    from .workspace import catalog_index

    store = parse_store(args.store)
    if store.kind != "numpy" and not args.index:
        index = open_store(store)
        embedder = load_clip(args.model or _model_source_for(index.model_id), device=args.device)
        index.check_model(embedder.model_id)
        return index, embedder
    index_file = args.index or store.location
    if index_file:
        index = ImageIndex.load(index_file)
        model = args.model or _model_source_for(index.model_id)
        embedder = load_clip(model, device=args.device)
        index.check_model(embedder.model_id)
        return index, embedder
    embedder = load_clip(args.model, device=args.device)
    return catalog_index(embedder), embedder


def _check_image(path: str | None) -> None:
    """A missing or unusable --image fails at once, before any model loads."""
    if path is not None:
        from .retrieval import open_query_image

        open_query_image(path)


def _model_source_for(model_id: str) -> str | None:
    """The model that made an index: the bundled mini-CLIP is found by name, hub models by id."""
    from .embeddings import BUNDLED_MODEL_DIR, BUNDLED_MODEL_NAME

    name = model_id.split("@")[0]
    if name == BUNDLED_MODEL_NAME:
        return str(BUNDLED_MODEL_DIR)
    return None if "@" in model_id else model_id


def _shown(text: object, keep: str = "") -> str:
    """Text safe to print: control characters, escape codes and undecodable bytes appear as escapes.

    A file name may hold ``\\x1b[31m`` or a line break, and one made of bytes that are not UTF-8
    could not even be printed; ``keep`` names the characters to leave alone (a line break in an answer).
    """
    return "".join(ch if ch.isprintable() or ch in keep else ascii(ch)[1:-1] for ch in str(text))


def _json(data: object, indent: int | None = None) -> str:
    """JSON text, with NaN and infinity (which JSON cannot hold) written as null."""

    def finite(value: object) -> object:
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(item) for item in value]
        return value

    return json.dumps(finite(data), indent=indent, allow_nan=False)


def _writable_folder(folder: Path, flag: str) -> None:
    """Make sure ``folder`` exists and takes new files, before any long work starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise CourseError(f"{flag} {folder}: cannot write there ({exc.strerror or exc}).") from None


def _check_counts(args: argparse.Namespace) -> None:
    """Counts of 0 or less are mistakes, not a request for the default."""
    for name in ("batch_size", "workers", "steps"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CourseError(f"--{name.replace('_', '-')} must be at least 1, got {value}.")


def _price(price: float | None) -> str:
    return "unknown" if price is None else f"${price:.2f}"


def _hits_table(hits) -> str:
    rows = [f"{'rank':>4}  {'product':<18} {'similarity':>10}  {'price':>8}  image"]
    for h in hits:
        weak = "  (exact: the query picture itself)" if h.exact else "  (weak)" if h.weak else ""
        rows.append(
            f"{h.rank:>4}  {_shown(h.product.name)[:18]:<18} {h.similarity:>10.3f}  {_price(h.product.price):>8}  "
            f"{_shown(Path(h.path).name)}{weak}"
        )
    return "\n".join(rows)


def cmd_catalog(args: argparse.Namespace) -> int:
    from .catalog import default_catalog, generate_catalog, load_catalog, render_catalog

    if args.generate is not None:
        products = generate_catalog(args.generate, seed=args.seed)
    else:
        products = load_catalog(args.catalog) if args.catalog else default_catalog()
    _writable_folder(Path(args.out), "--out")
    paths = render_catalog(products, args.out)
    print(f"Rendered {len(paths)} products to {_shown(args.out)}/ (catalog.json beside them).")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .catalog import default_catalog, load_catalog
    from .embeddings import load_clip
    from .indexing import folder_inputs, index_files
    from .store import open_store, parse_store
    from .workspace import catalog_images

    skipped: list[dict] = []
    if args.images:
        # a rendered catalog (with catalog.json) or any photo folder: one product per image file
        products, paths, skipped = folder_inputs(args.images, args.catalog)
    else:
        products = load_catalog(args.catalog) if args.catalog else default_catalog()
        paths = catalog_images(products)
    embedder = load_clip(args.model, device=args.device)
    store = parse_store(args.store)
    if args.engine == "ray" and store.kind != "numpy":
        raise CourseError("--engine ray writes an index file (the numpy store) only; drop --store or the engine.")
    if store.kind != "numpy":
        index = open_store(store, create=True).build(products, paths, embedder, batch_size=args.batch_size)
        skipped = [*skipped, *index.skipped]
        if args.json:
            summary = {"indexed": len(index), "skipped": skipped, **index.last_build}
            print(_json({**summary, "store": str(store), "model": index.model_id}))
        else:
            done = ", ".join(f"{n} {what}" for what, n in index.last_build.items())
            print(f"Indexed {len(index)} images with {_shown(index.model_id)} into {_shown(store)} ({done}).")
            if skipped:
                print(_skipped_table(skipped))
        return 0
    target = Path(store.location or args.out)
    _writable_folder(target if target.is_dir() else target.parent, "--store" if store.location else "--out")
    engine_options = (
        {"actors": args.actors} if args.engine == "ray" else {"workers": args.workers, "parallel": args.parallel}
    )
    index, run = index_files(
        products,
        paths,
        embedder,
        skipped=skipped,
        engine=args.engine,
        batch_size=args.batch_size,
        cache=args.cache,
        **engine_options,
    )
    out = index.save(store.location or args.out)
    counts = {"embedded": run.embedded, "cached": run.cached, "seconds": round(run.seconds, 3)}
    if args.json:
        print(
            _json(
                {"indexed": len(index), "skipped": index.skipped, "index": str(out), "model": index.model_id, **counts}
            )
        )
        return 0
    print(
        f"Indexed {len(index)} images with {_shown(index.model_id)} into {_shown(out)} "
        f"({run.embedded} embedded, {run.cached} from the cache, {run.images_per_second:.1f} images/s)."
    )
    if index.skipped:
        print(_skipped_table(index.skipped))
    return 0


def _skipped_table(skipped: list[dict], limit: int = 30) -> str:
    """The files indexing skipped, and why, most common reason first."""
    reasons: dict[str, int] = {}
    for item in skipped:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    rows = [f"Skipped {len(skipped)} file(s):", f"  {'file':<40}  reason"]
    for item in sorted(skipped, key=lambda s: (-reasons[s["reason"]], s["path"]))[:limit]:
        rows.append(f"  {_shown(Path(item['path']).name)[:40]:<40}  {_shown(item['reason'])}")
    if len(skipped) > limit:
        rows.append(f"  ... and {len(skipped) - limit} more (use --json for the full list)")
    return "\n".join(rows)


def cmd_search(args: argparse.Namespace) -> int:
    from .retrieval import retrieve, retrieve_by_image

    if args.image is None and args.query is None:
        raise CourseError("Give a query, --image PATH, or both (e.g. search --image shoe.jpg 'in blue').")
    if args.weight is not None and args.image is None:
        raise CourseError("--weight sets how much the words count next to --image; give --image too.")
    _check_image(args.image)
    index, embedder = _load_index(args)
    if args.image is None:
        found = retrieve(args.query, index, embedder, k=args.k, plan=args.plan)
    else:
        weight = TEXT_WEIGHT if args.weight is None else args.weight
        found = retrieve_by_image(args.image, index, embedder, k=args.k, text=args.query, weight=weight, plan=args.plan)
    if args.json:
        print(
            _json(
                {
                    "query": found.query,
                    "query_image": found.query_image,
                    "model": index.model_id,
                    "plan": found.plan_dict(),
                    "match": found.match,
                    "note": found.note,
                    "results": [h.to_dict() for h in found],
                }
            )
        )
        return 0
    image = f"   image {_shown(found.query_image)}" if found.query_image else ""
    query = _shown(found.query) if found.query else "(the picture alone)"
    print(f"Query: {query}{image}   (model {_shown(index.model_id)}, plan {found.plan})")
    if found.note:
        print(f"Note: {_shown(found.note)}")
    print(_hits_table(found))
    if not found.match:
        print("No product stands out for this query: the catalog may not have it.")
    return 0


def _sent_line(result) -> str:
    sent = result.sent
    if sent is None:
        return ""
    if sent.image_tokens is None or not sent.images:
        tokens = sent.image_tokens_source
    else:
        tokens = f"{sent.image_tokens} image tokens ({sent.image_tokens_source})"
    return f"Sent ({result.condition}, {result.metadata} rows): {sent.images} image(s), {sent.prompt_chars} characters, {_shown(tokens)}."


def cmd_ask(args: argparse.Namespace) -> int:
    from .llm import get_cascade
    from .rag import ALL_IMAGES_LIMIT, ImageRAG

    context = "none" if args.no_rag else args.context
    if args.no_rag and args.context not in ("none", "both"):
        raise CourseError(f"--no-rag is --context none; it cannot be combined with --context {args.context}.")
    if args.question is None and args.image is None:
        raise CourseError(
            "Give a question, --image PATH, or both (e.g. ask 'Do you have this in blue?' --image shoe.jpg)."
        )
    _check_image(args.image)
    index, embedder = _load_index(args)
    # every catalog image travels in one request only under all-images; otherwise the usual limit
    llm = get_cascade(verbose=False, **({"max_images": ALL_IMAGES_LIMIT} if context == "all-images" else {}))
    rag = ImageRAG(index, embedder, llm, plan=args.plan, metadata=args.metadata, seed=args.seed)
    result = rag.ask(args.question or "", context, k=args.k, image=args.image)
    for attempt in result.attempts:
        if getattr(attempt, "outcome", None) == "failed":  # one line each, on stderr: --json keeps stdout one object
            print(f"{attempt.provider} did not answer: {_shown(attempt.reason)}", file=sys.stderr)
    if args.json:
        print(_json({"query": result.question, "model": index.model_id, **result.to_dict()}))
        return 0
    photo = f"   photo {_shown(result.query_image)}" if result.query_image else ""
    if result.used_rag:
        print(f"Question: {_shown(result.question)}{photo}   (model {_shown(index.model_id)}, plan {result.plan})")
        if result.note:
            print(f"Note: {_shown(result.note)}")
        print(_hits_table(result.hits))
        print()
    elif photo:
        print(f"Question: {_shown(result.question)}{photo}")
    cached = ", cached" if result.cached else ""
    print(f"Answer ({_shown(result.provider)}, {_shown(result.model)}{'' if result.used_rag else ', no RAG'}{cached}):")
    print(_shown(result.answer, keep="\n"))  # an answer comes from a server: no escape codes reach the terminal
    print(_sent_line(result))
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from .ablation import ablation_questions, first_per_type, format_table, load_ablation_questions, run_ablation
    from .catalog import default_catalog, load_catalog
    from .embeddings import load_clip
    from .llm import get_cascade
    from .rag import ALL_IMAGES_LIMIT, ImageRAG, check_condition
    from .workspace import catalog_index

    conditions = [check_condition(c.strip()) for c in args.conditions.split(",") if c.strip()]
    products = load_catalog(args.catalog) if args.catalog else default_catalog()
    questions = load_ablation_questions(args.questions) if args.questions else None
    if args.per_type is not None:
        questions = first_per_type(questions or ablation_questions(products), args.per_type)
    out = Path(args.out) if args.out else None
    if out:
        _writable_folder(out.parent, "--out")
    embedder = load_clip(args.model, device=args.device)
    index = catalog_index(embedder, products)
    llm = get_cascade(verbose=False, providers=args.provider, max_images=ALL_IMAGES_LIMIT)
    rag = ImageRAG(index, embedder, llm, metadata=args.metadata, seed=args.seed)
    report = run_ablation(
        rag,
        questions,
        conditions=conditions,
        k=args.k,
        progress=lambda message: print(f"ablation: {message}", file=sys.stderr, flush=True),
    )
    report["catalog"] = args.catalog or "default"
    if out:
        out.write_text(_json(report, indent=1) + "\n", encoding="utf-8")
    print(_json(report) if args.json else _shown(format_table(report), keep="\n"))
    return 0
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import format_report, run_eval

    if args.image_queries:
        return _image_eval(args)
    if args.out:
        raise CourseError("--out writes the report of --image-queries; use --json and redirect for the others.")
    if args.as_given:
        raise CourseError("--as-given changes how --image-queries embeds pictures; it does nothing without it.")
    report = run_eval(args.queries, catalog_path=args.catalog, model=args.model, device=args.device)
    print(_json(report) if args.json else _shown(format_report(report), keep="\n"))
    return 0


def _image_eval(args: argparse.Namespace) -> int:
    from .image_eval import format_image_report, run_image_eval

    report = run_image_eval(args.catalog, model=args.model, device=args.device, seed=args.seed, views=not args.as_given)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report) if args.json else format_image_report(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .mini_clip.train import train_mini_clip

    kwargs = {"steps": args.steps} if args.steps else {}
    _writable_folder(Path(args.out), "--out")
    result = train_mini_clip(args.out, seed=args.seed, device=args.device, **kwargs)
    print(f"Trained for {result['elapsed_s']:.0f} s; model saved to {_shown(args.out)}/.")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import format_table, run_bench, save_plot
    from .config import cache_dir

    try:
        sizes = sorted({int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()})
    except ValueError:
        raise CourseError(f"--sizes {args.sizes!r}: give index sizes separated by commas, e.g. 1000,100000.") from None
    if not sizes or min(sizes) < 10:
        raise CourseError("--sizes: each index size must be at least 10.")
    out = Path(args.out) if args.out else None
    _writable_folder(out.parent if out else cache_dir() / "bench", "--out" if out else "the cache folder")
    log = lambda message: print(f"bench: {message}", file=sys.stderr, flush=True)  # noqa: E731
    if args.photos is not None:
        from .bench import format_photo_table, run_photo_bench

        result = run_photo_bench(
            arch=args.arch,
            device=args.device,
            n_photos=args.photos,
            model=args.model,
            batch_size=args.batch_size,
            workers=args.workers,
            parallel=args.parallel,
            repeat=args.repeat,
            log=log,
        )
        if out:
            out.write_text(_json(result, indent=2) + "\n")
        print(_json(result) if args.json else format_photo_table(result))
        return 0
    result = run_bench(
        arch=args.arch,
        device=args.device,
        n_images=args.n_images,
        sizes=sizes,
        model=args.model,
        batch_size=args.batch_size,
        workers=args.workers,
        parallel=args.parallel,
        faiss_method=args.faiss_method,
        repeat=args.repeat,
        log=log,
    )
    if args.chroma:
        from .bench import bench_chroma

        try:
            chroma_sizes = sorted({int(size.replace("_", "")) for size in args.chroma.split(",") if size.strip()})
        except ValueError:
            raise CourseError(f"--chroma {args.chroma!r}: give index sizes separated by commas.") from None
        # clustered vectors of CLIP ViT-B/32's size, like the FAISS timings beside them
        result["chroma"] = bench_chroma(
            chroma_sizes,
            dim=512,
            vectors="clustered",
            progress=log,
        )
    name = f"bench-{result['arch']}-{result['device'].replace(':', '')}.png"
    result["plot"] = str(save_plot(result, out.with_suffix(".png") if out else cache_dir() / "bench" / name))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_json(result, indent=2) + "\n")
    print(_json(result) if args.json else f"{format_table(result)}\n\nPlot: {result['plot']}")
    if args.chroma and not args.json:
        from .bench import format_bench

        print(f"\nChroma against exact search:\n{format_bench(result['chroma'])}")
    return 0


COMMANDS = {
    "catalog": cmd_catalog,
    "index": cmd_index,
    "search": cmd_search,
    "ask": cmd_ask,
    "ablation": cmd_ablation,
    "eval": cmd_eval,
    "train-mini-clip": cmd_train,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``python -m course_utils ...``) on ``argv``; return the exit code.

    Introduced in 09_scaling_with_a_vector_database.
    """
    args = build_parser().parse_args(argv)
    try:
        _check_counts(args)
        with warnings.catch_warnings():
            # every refused image is listed with its reason; Pillow's warning about it is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return COMMANDS[args.command](args)
    except CourseError as exc:
        print(f"error: {_shown(exc, keep=chr(10))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the system refused: the path says what to fix
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{_shown(where)}: {_shown(exc.strerror or exc)}.", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: not enough memory for this; try fewer or smaller inputs.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
