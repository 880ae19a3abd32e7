"""The ``graphrec`` command: a thin shell over :mod:`graphrec.pipeline`.

A user's mistake (bad file, bad recipe, bad config) ends with one line on
stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Sequence

from graphrec.errors import ConfigError, GraphrecError

EXIT_USER_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow the options: `graphrec run CFG --run-dir x train.epochs=1`
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="graphrec: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.handler(args) or 0
    except GraphrecError as exc:
        if args.debug:
            raise
        if type(exc).__name__ != "MainRankError":  # that one, rank 0 of the group has printed
            print(f"graphrec: error{_rank_label()}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("graphrec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `graphrec datasets | head`: the reader left; nothing more to print
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _rank_label() -> str:
    """`` (rank N)`` in a process of a data-parallel group other than rank 0, else nothing."""
    rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
    return "" if rank == "0" else f" (rank {rank})"


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage mistakes end like every user error: one line, exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USER_ERROR, f"graphrec: error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="graphrec",
        description="Graph-centric recommendation: build a heterogeneous graph from your files, "
                    "train and evaluate recommenders, and list recommendations.",
        epilog="Quick start: `graphrec demo`. Each command has its own --help.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    build = commands.add_parser("build", help="build a graph from a recipe and print its node/edge table",
                                description="Read the files a graph recipe names, check them, build the "
                                            "heterogeneous graph and id maps, cache them, and print a summary.")
    build.add_argument("recipe", help="recipe name under graphs/ (e.g. ml-100k) or a path to a recipe YAML")
    build.add_argument("--data-root", default="data", help="folder the recipe's paths start from (default: ./data)")
    build.add_argument("--cache-dir", default=None, help="where built graphs are cached "
                                                         "(default: $GRAPHREC_CACHE or ~/.cache/graphrec)")
    build.add_argument("--rebuild", action="store_true", help="build even if a cached graph exists")
    build.add_argument("--out", default=None, help="also save the built graph and id maps into this folder")
    build.set_defaults(handler=_build)

    run = commands.add_parser("run", help="train and evaluate a model from a run config",
                              description="Train and evaluate as a run config says; write a run folder "
                                          "(config, metrics, checkpoints, training curve).")
    run.add_argument("config", help="run config YAML (see configs/)")
    run.add_argument("overrides", nargs="*", metavar="key=value",
                     help="dotted overrides, e.g. train.epochs=5 model.name=mf graph.data_root=../shared/data")
    run.add_argument("--run-dir", default=None, help="run folder (default: output.dir/output.name or a new name)")
    run.add_argument("--resume", action="store_true", help="continue the run folder from its last checkpoint")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    run.add_argument("--nproc", type=int, default=None, metavar="N",
                     help="train data-parallel in N processes on this host (torchrun on a free port; gloo on CPU, "
                          "one GPU each with NCCL); the exit code is the group's. Across hosts use torchrun "
                          "(docs/scaling.md)")
    run.set_defaults(handler=_run)

    pretrain = commands.add_parser(
        "pretrain", help="pre-train a graph encoder on self-supervised pretext tasks",
        description="Pre-train the inputs and encoder of a `model.name: graph` config on the pretext recipe "
                    "pretrain.pretext (masked node / masked edge / meta-path / contrastive, see pretext/) over the "
                    "training graph of the config's split; write a run folder with encoder.safetensors.",
        epilog="Then: graphrec finetune CONFIG --from RUN_FOLDER --strategy full|partial|head|adapter|prompt")
    pretrain.add_argument("config", help="run config YAML with model.name: graph (see configs/pretrain-*.yaml)")
    pretrain.add_argument("overrides", nargs="*", metavar="key=value",
                          help="dotted overrides, e.g. pretrain.steps=100 model.encoder=rgcn")
    pretrain.add_argument("--pretext", default=None,
                          help="pretext recipe name under pretext/ or a path (default: the config's pretrain.pretext)")
    pretrain.add_argument("--run-dir", default=None, help="run folder (default: output.dir/<recipe>-pretrain-...)")
    pretrain.add_argument("--resume", action="store_true", help="continue the run folder from its last checkpoint")
    pretrain.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    pretrain.set_defaults(handler=_pretrain)

    finetune = commands.add_parser(
        "finetune", help="fine-tune a pre-trained graph encoder for recommendation and evaluate it",
        description="Train and evaluate a `model.name: graph` config starting from a pre-trained encoder. "
                    "full: every weight trains; partial: finetune.frozen prefixes stay frozen; head: only the "
                    "head trains (model.head linear or mlp); adapter: bottleneck adapters after each layer and "
                    "the head; prompt: prompt vectors added to the inputs and the head. The run folder's "
                    "finetune.json and metrics.json record how many parameters trained.")
    finetune.add_argument("config", help="run config YAML with model.name: graph")
    finetune.add_argument("overrides", nargs="*", metavar="key=value",
                          help="dotted overrides, e.g. finetune.frozen=[embedding] model.head=mlp")
    finetune.add_argument("--from", dest="checkpoint", default=None,
                          help="a folder `graphrec pretrain` wrote, or its encoder.safetensors "
                               "(default: the config's finetune.checkpoint; none trains from scratch)")
    finetune.add_argument("--strategy", default=None, choices=("full", "partial", "head", "adapter", "prompt"),
                          help="what trains (default: the config's finetune.strategy)")
    finetune.add_argument("--run-dir", default=None, help="run folder (default: output.dir/output.name or a new name)")
    finetune.add_argument("--resume", action="store_true", help="continue the run folder from its last checkpoint")
    finetune.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    finetune.set_defaults(handler=_finetune)

    evaluate = commands.add_parser("evaluate", help="evaluate a finished run again",
                                   description="Reload a run's best model and split and compute ranking metrics.")
    evaluate.add_argument("run", help="run folder made by `graphrec run`")
    evaluate.add_argument("--part", choices=["test", "valid"], default="test", help="which held-out part")
    evaluate.add_argument("--protocol", choices=["full", "sampled"], default=None,
                          help="full ranking or ranking against sampled negatives (default: the run's)")
    evaluate.add_argument("--num-negatives", type=int, default=None, help="negatives per user for --protocol sampled")
    evaluate.add_argument("--format", choices=["table", "json"], default="table")
    evaluate.set_defaults(handler=_evaluate)

    recommend = commands.add_parser("recommend", help="top-K items for a user, with names",
                                    description="Print the top-K unseen items of a trained run for some users.")
    recommend.add_argument("--run", required=True, help="run folder made by `graphrec run`")
    recommend.add_argument("--user", required=True, action="append", help="raw user id (repeat for several)")
    recommend.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    recommend.add_argument("--format", choices=["table", "json"], default="table")
    recommend.set_defaults(handler=_recommend)

    explain = commands.add_parser(
        "explain", help="top-K items for a user, each with a knowledge-graph path that explains it",
        description="Load a path-LM run (model.name: path_lm) and print each user's top-K unseen items with "
                    "the path that led to them, written as sentences. Every hop of a path is an edge of the "
                    "training graph unless --unconstrained is given.",
        epilog="Example: graphrec explain --run runs/ml-1m-path-lm --user 1 -k 10")
    explain.add_argument("--run", required=True, help="run folder of a path_lm run")
    explain.add_argument("--user", required=True, action="append", help="raw user id (repeat for several)")
    explain.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    explain.add_argument("--format", choices=["text", "json"], default="text")
    explain.add_argument("--unconstrained", action="store_true",
                         help="decode without the graph constraint (hops may not exist; for comparison only)")
    explain.set_defaults(handler=_explain)

    plot_path = commands.add_parser(
        "plot-path", help="draw a user's explained recommendations (or neighbourhood) as a PNG",
        description="Draw the knowledge-graph paths behind a user's top-K recommendations of a path-LM run "
                    "(model.name: path_lm): the user on the left, the recommended items on the right, nodes "
                    "coloured by type, edges labelled with their relation. With --neighbourhood, draw instead the "
                    "user's neighbourhood in the training graph of any run.",
        epilog="Example: graphrec plot-path --run runs/ml-1m-path-lm --user 1 -k 5 --out user-1.png")
    plot_path.add_argument("--run", required=True, help="run folder (a path_lm run unless --neighbourhood)")
    plot_path.add_argument("--user", required=True, help="raw user id")
    plot_path.add_argument("-k", type=int, default=5, help="recommendations to draw (default: 5)")
    plot_path.add_argument("--out", default=None,
                           help="PNG to write (default: RUN/path-USER.png, RUN/neighbourhood-USER.png)")
    plot_path.add_argument("--neighbourhood", action="store_true",
                           help="draw the user's neighbourhood in the training graph instead of paths")
    plot_path.add_argument("--hops", type=int, default=2, help="--neighbourhood: hops from the user, 1-3 (default: 2)")
    plot_path.add_argument("--max-nodes", type=int, default=30,
                           help="--neighbourhood: most nodes drawn, the user included (default: 30)")
    plot_path.set_defaults(handler=_plot_path)

    report = commands.add_parser(
        "report", help="write a run's HTML report, or one page comparing several runs",
        description="With one run folder: (re)write RUN/report.html, a self-contained page (no network, no "
                    "JavaScript) with the run's metrics, training curves, test metrics per user-activity bucket, "
                    "the top-K lists of a few test users with their test hits marked (and the explaining paths of "
                    "a path_lm run), the config and the environment. With several: one page putting their metrics "
                    "side by side (the best of each row in bold), the config keys that differ and their curves.",
        epilog="Examples: `graphrec report runs/ml-1m-lightgcn` writes runs/ml-1m-lightgcn/report.html; "
               "`graphrec report runs/ml-1m-mf runs/ml-1m-lightgcn --out compare.html` compares the two.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) made by `graphrec run` or `finetune`")
    report.add_argument("--out", default=None,
                        help="the page to write (default: RUN/report.html for one run, ./report-compare.html for "
                             "several)")
    report.add_argument("--users", type=int, default=3, help="test users with sample top-K lists (default: 3)")
    report.add_argument("-k", type=int, default=10, help="length of the sample lists (default: 10)")
    report.set_defaults(handler=_report)

    text = commands.add_parser("text", help="text features: behaviour-tune the PLM that encodes item texts",
                               description="Commands on the pre-trained language model of a recipe's text_features.")
    text_commands = text.add_subparsers(title="text commands", metavar="COMMAND")
    tune = text_commands.add_parser(
        "tune", help="fine-tune the PLM on the training sequences of a run config (contrastive next item)",
        description="Fine-tune the recipe's text model so that the text of a user's recent items lies close to "
                    "the text of their next item (InfoNCE, in-batch negatives), on the training split of a run "
                    "config only. The tuned model is written to --out; use it with model.item_init=text "
                    "model.text_model=OUT.",
        epilog="Example: graphrec text tune configs/sasrec.yaml graph.data_root=../shared/data --out runs/tuned-plm")
    tune.add_argument("config", help="run config YAML whose graph and split give the training sequences")
    tune.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides of the run config")
    tune.add_argument("--out", required=True, help="folder for the tuned model (replaced atomically)")
    tune.add_argument("--base", default=None, help="PLM folder to start from (default: the recipe's text_features "
                                                   "model, else the packaged all-MiniLM-L6-v2)")
    tune.add_argument("--epochs", type=int, default=1, help="passes over the (history, next item) pairs (default: 1)")
    tune.add_argument("--history", type=int, default=5, help="recent items in a history text (default: 5)")
    tune.add_argument("--batch-size", type=int, default=32, help="pairs per step; the in-batch negatives (default: 32)")
    tune.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default: 5e-5)")
    tune.add_argument("--max-pairs", type=int, default=None, help="train on a seeded sample of this many pairs")
    tune.set_defaults(handler=_text_tune)

    datasets = commands.add_parser("datasets", help="list the known graph recipes and the files each expects")
    datasets.add_argument("--data-root", default="data", help="check which recipes' files are present here")
    datasets.set_defaults(handler=_datasets)

    demo = commands.add_parser("demo", help="the quick start on the built-in synthetic graph",
                               description="Generate the synthetic dataset, build its graph, train popularity, "
                                           "MF-BPR and LightGCN, pre-train a GraphSAGE encoder on the chest pretext "
                                           "recipe and fine-tune it, and print their metrics (a few minutes on CPU).")
    demo.add_argument("--out", default="runs/demo", help="folder for the demo's runs (default: runs/demo)")
    demo.add_argument("--epochs", type=int, default=40, help="training epochs per model (default: 40)")
    demo.add_argument("--users", type=int, default=1000, help="synthetic users (default: 1000)")
    demo.add_argument("--items", type=int, default=500, help="synthetic items (default: 500)")
    demo.add_argument("--pretrain-steps", type=int, default=60, help="pre-training steps (default: 60)")
    demo.set_defaults(handler=_demo)

    synthetic = commands.add_parser(
        "synthetic", help="write the seeded synthetic dataset, at any size, as the files graphs/synthetic.yaml reads",
        description="Generate the synthetic dataset (users in communities, items in clusters; interactions, "
                    "genres, tags, social links, KG and text all follow them) and write its tables to "
                    "OUT/synthetic/<table>.csv (or .parquet). A million users and ten million interactions take "
                    "well under two minutes.",
        epilog="Example (the graph of benchmarks/scale.py): graphrec synthetic --out /tmp/scale --users 1000000 "
               "--items 200000 --interactions 10000000 --communities 20 --tags 5000 --entities 50000 "
               "--format parquet")
    synthetic.add_argument("--out", required=True, help="data root; the tables go to OUT/synthetic/")
    synthetic.add_argument("--users", type=int, default=1000, help="users (default: 1000)")
    synthetic.add_argument("--items", type=int, default=500, help="items (default: 500)")
    synthetic.add_argument("--interactions", type=int, default=None,
                           help="total interactions to aim for (default: a mean of 30 per user)")
    synthetic.add_argument("--communities", type=int, default=8, help="user communities = item clusters (default: 8)")
    synthetic.add_argument("--tags", type=int, default=40, help="tags (default: 40)")
    synthetic.add_argument("--entities", type=int, default=300,
                           help="KG entities besides the items' own (default: 300)")
    synthetic.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    synthetic.add_argument("--format", choices=("csv", "parquet"), default="csv",
                           help="file format (default: csv, which graphs/synthetic.yaml reads; parquet is smaller "
                                "and faster: point a copy of the recipe at the .parquet files)")
    synthetic.set_defaults(handler=_synthetic)
    return parser


# ---------------------------------------------------------------------- handlers
def _build(args: argparse.Namespace) -> int:
    from graphrec.graph import describe, load_graph

    bundle = load_graph(args.recipe, args.data_root, args.cache_dir, rebuild=args.rebuild)
    print(describe(bundle))
    for table, count in bundle.dropped.items():
        print(f"dropped {count:,} rows of '{table}' that referenced undefined ids")
    if args.out:
        bundle.save(args.out)
        print(f"saved to {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from graphrec.config import load_config
    from graphrec.pipeline import run

    config = load_config(args.config, args.overrides)  # checked once here, before any process starts
    if args.nproc is not None and args.nproc != 1:
        from graphrec.distributed import launch_local
        from graphrec.pipeline import check_data_parallel

        check_data_parallel(config, args.nproc)
        argv = ["run", args.config, *args.overrides, *(["--run-dir", args.run_dir] if args.run_dir else []),
                *(["--resume"] if args.resume else []), *(["--overwrite"] if args.overwrite else [])]
        return launch_local(args.nproc, (["--debug"] if args.debug else []) + argv, quiet=not args.debug)
    result = run(config, resume=args.resume, overwrite=args.overwrite, run_dir=args.run_dir)
    if _rank_label():  # rank 0 of a data-parallel group prints the results
        return 0
    print(format_metrics({config.model.name: result.test_metrics}, title="test metrics"))
    print(f"seconds/epoch {result.seconds_per_epoch:.2f}   test evaluation {result.eval_seconds:.2f} s")
    print(f"run folder: {result.run_dir}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from graphrec.config import load_config
    from graphrec.transfer import pretrain

    overrides = list(args.overrides) + ([f"pretrain.pretext={args.pretext}"] if args.pretext else [])
    config = load_config(args.config, overrides)
    result = pretrain(config, resume=args.resume, overwrite=args.overwrite, run_dir=args.run_dir)
    final = result.history[-1] if result.history else {}
    losses = "   ".join(f"{k.removeprefix('loss/')} {v:.4f}" for k, v in final.items() if k.startswith("loss"))
    print(f"pre-trained {final.get('step', 0)} steps in {result.seconds:.1f} s   {losses}")
    print(f"encoder checkpoint: {result.checkpoint}")
    print(f"next: graphrec finetune {args.config} --from {result.run_dir} --strategy full")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from graphrec.config import load_config
    from graphrec.pipeline import run

    overrides = list(args.overrides)
    if args.checkpoint is not None:
        overrides.append(f"finetune.checkpoint={args.checkpoint}")
    if args.strategy is not None:
        overrides.append(f"finetune.strategy={args.strategy}")
    config = load_config(args.config, overrides)
    result = run(config, resume=args.resume, overwrite=args.overwrite, run_dir=args.run_dir)
    title = f"test metrics ({config.model.encoder}, strategy {config.finetune.strategy})"
    print(format_metrics({config.model.encoder: result.test_metrics}, title=title))
    metrics = (result.run_dir / "metrics.json")
    if metrics.is_file():
        import json

        info = json.loads(metrics.read_text()).get("finetune", {})
        if info:
            print(f"trained {info['trainable_parameters']:,} of {info['total_parameters']:,} parameters")
    print(f"run folder: {result.run_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from graphrec.pipeline import evaluate_model, load_run

    if args.num_negatives is not None and args.num_negatives < 1:
        raise ConfigError(f"--num-negatives must be at least 1, found {args.num_negatives}")

    config, data, model = load_run(args.run, history="train+valid" if args.part == "test" else "train")
    edges, exclude = (data.test, [data.train, data.valid]) if args.part == "test" else (data.valid, [data.train])
    if config.model.name == "path_lm":  # ranked by decoded paths: its own protocol, with explanation metrics
        metrics = model.evaluate(edges, exclude=exclude[1:], ks=config.eval.ks, names=config.eval.metrics,
                                 progress=True)
        print(json.dumps(metrics, indent=2) if args.format == "json" else
              format_metrics({config.model.name: metrics}, title=f"{args.part} metrics (path decoding)"))
        return 0
    if args.protocol:
        config.eval.protocol = args.protocol
    if args.num_negatives:
        config.eval.num_negatives = args.num_negatives
    metrics = evaluate_model(model, config, data.bundle.num_users, data.bundle.num_items, edges, exclude,
                             data.candidate_items)
    if args.format == "json":
        print(json.dumps(metrics, indent=2))
    else:
        print(format_metrics({config.model.name: metrics}, title=f"{args.part} metrics ({config.eval.protocol})"))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from graphrec.pipeline import recommend

    lists = recommend(args.run, args.user, args.k)
    if args.format == "json":
        print(json.dumps(lists, indent=2))
        return 0
    for entry in lists:
        print(f"user {entry['user']}")
        for row in entry["items"]:
            label = row["name"] if row["name"] == row["item"] else f"{row['name']} [{row['item']}]"
            print(f"  {row['rank']:>3}. {label}  ({row['score']:.3f})")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from graphrec.explain.api import ExplainedRun, recommend_with_paths

    lists = recommend_with_paths(ExplainedRun(args.run), args.user, args.k,
                                 constrained=False if args.unconstrained else None)
    if args.format == "json":
        print(json.dumps(lists, indent=2))
        return 0
    for entry in lists:
        print(f"user {entry['user']}")
        if not entry["items"]:
            print("  no path reaches an unseen item")
        for row in entry["items"]:
            print(f"  {row['rank']:>3}. {row['name']}  ({row['score']:.2f})")
            print(f"       {row['explanation']}")
    return 0


def _plot_path(args: argparse.Namespace) -> int:
    from graphrec.explain.plot import default_plot_name, plot_neighbourhood, plot_paths

    if args.k < 1:
        raise ConfigError(f"-k must be at least 1, found {args.k}")
    out = Path(args.out) if args.out else Path(args.run) / default_plot_name(args.user, args.neighbourhood)
    if args.neighbourhood:
        plot = plot_neighbourhood(args.run, args.user, hops=args.hops, max_nodes=args.max_nodes, out=out)
    else:
        plot = plot_paths(args.run, args.user, k=args.k, out=out)
    print(f"{plot.path}  ({plot.graph.number_of_nodes()} nodes, {plot.graph.number_of_edges()} edges)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from graphrec.errors import ConfigError
    from graphrec.report import compare_runs, write_report

    if args.users < 0:
        raise ConfigError(f"--users must be at least 0, found {args.users}")
    if args.k < 1:
        raise ConfigError(f"-k must be at least 1, found {args.k}")
    if len(args.runs) == 1:
        path = write_report(args.runs[0], args.out, num_users=args.users, k=args.k)
    else:
        path = compare_runs(args.runs, args.out or "report-compare.html")
    print(path)
    return 0


def _text_tune(args: argparse.Namespace) -> int:
    from graphrec.config import load_config
    from graphrec.errors import ConfigError
    from graphrec.graph.builder import text_encoder
    from graphrec.graph.recipe import find_recipe, load_recipe
    from graphrec.pipeline import prepare
    from graphrec.sequential import user_item_lists
    from graphrec.text import behavior_tune

    config = load_config(args.config, args.overrides)
    recipe, path = load_recipe(find_recipe(config.graph.recipe))
    features = recipe.text_features
    if features is None or "item" not in features.node_types:
        raise ConfigError(f"{path}: recipe has no text_features for items; `text tune` needs item texts")
    data = prepare(config)
    sequences = user_item_lists(data.bundle, data.split.train)
    encoder = text_encoder(features, model=args.base)
    result = behavior_tune(encoder, data.bundle.texts["item"], sequences, history=args.history, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, max_pairs=args.max_pairs, seed=config.seed,
                           output_dir=args.out)
    losses = ", ".join(f"{loss:.4f}" for loss in result.losses)
    print(f"tuned on {result.num_pairs:,} (history, next item) pairs in {result.seconds:.0f} s; loss per epoch: {losses}")
    print(f"tuned model: {result.model_dir}  (use: model.item_init=text model.text_model={result.model_dir})")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from graphrec.graph.cache import recipe_sources
    from graphrec.graph.recipe import default_recipes_dir, load_recipe, resolve_source

    root = Path(args.data_root)
    print(f"recipes in {default_recipes_dir()} (files checked under {root.resolve()}):")
    for path in sorted(default_recipes_dir().glob("*.yaml")):
        recipe, _ = load_recipe(path)
        files = [p for key, source in recipe_sources(recipe) for p in resolve_source(source, root, key).path]
        present = sum(p.is_file() for p in files)
        status = "ready" if present == len(files) else f"{present}/{len(files)} files present"
        print(f"\n  {recipe.name}  [{status}]")
        if recipe.description:
            print(f"    {recipe.description}")
        if recipe.files:
            print(f"    files: {recipe.files}")
        for missing in [p for p in files if not p.is_file()][:3]:
            print(f"    missing: {missing}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from graphrec.demo import demo

    demo(out=Path(args.out), epochs=args.epochs, num_users=args.users, num_items=args.items,
         pretrain_steps=args.pretrain_steps)
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    import time

    from graphrec.data.synthetic import generate, write

    start = time.perf_counter()
    try:
        data = generate(num_users=args.users, num_items=args.items, num_interactions=args.interactions,
                        num_communities=args.communities, num_tags=args.tags, num_kg_entities=args.entities,
                        seed=args.seed)
    except ValueError as exc:  # generate() names its argument first; say which option that is
        message = str(exc).replace("generate(): ", "")
        options = {"num_users": "--users", "num_items": "--items", "num_interactions": "--interactions",
                   "num_communities": "--communities", "num_tags": "--tags", "num_kg_entities": "--entities"}
        name = message.split(" ", 1)[0]
        raise ConfigError(f"{options[name]} ({name}): {message}" if name in options else message) from None
    folder = write(data, Path(args.out) / "synthetic", format=args.format)
    for name, table in data.tables().items():
        print(f"{name:<14}{len(table):>12,} rows")
    print(f"wrote {folder} in {time.perf_counter() - start:.1f} s")
    return 0


def format_metrics(rows: dict[str, dict[str, float]], title: str = "",
                   columns: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per model, one column per metric."""
    names = list(columns or [k for k in next(iter(rows.values())) if "@" in k])
    width = max([len(m) for m in rows] + [8])
    header = f"{'model':<{width}}  " + "  ".join(f"{n:>12}" for n in names)
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    for model, metrics in rows.items():
        lines.append(f"{model:<{width}}  " + "  ".join(f"{metrics.get(n, float('nan')):>12.4f}" for n in names))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
