# Configuration checks and the helpers of all the rules. Nothing here touches models or data, so a config error
# is reported in seconds, naming the key and what to change.
import json
import os
import shlex

from snakemake.utils import validate

from bgpo.budget import DEFAULT_CANDIDATES
from bgpo.protocols import CUSTOM, get_protocol
from bgpo.variants import load_variant, variant_names


# Variants trained and tabulated only in the full results (table1_all), after Table 1's methods.
EXTRA_METHODS = list(config.get("extra_methods", []))


def _check_config():
    """Every config mistake is one line naming its key (bgpo/pipeline_config.py), before anything runs."""
    import yaml

    from bgpo.config import ConfigError
    from bgpo.pipeline_config import check_pipeline_config

    schema_path = workflow.source_path("../schemas/config.schema.yaml")
    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    try:
        check_pipeline_config(config, schema)
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None  # Snakemake prints a SystemExit's message alone
    validate(config, schema_path)  # fills in the schema's defaults; the check above has found any error


_check_config()

WORK = config["work"]
RESULTS = config["results"]
THREADS = int(config.get("threads", 1))
# Own benchmarks evaluated in the job that trains the model (see config.evaluate.in_training_job).
IN_JOB = bool(config.get("evaluate", {}).get("in_training_job", False))
# The evaluation protocol of every evaluation (bgpo/protocols.py): recorded in each row, named in each table.
PROTOCOL = config.get("evaluate", {}).get("protocol", CUSTOM)
if config.get("offline", True):
    for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[_var] = "1"
# Every shell command runs with this many math threads (the notes: two single-thread jobs beat one 2-thread job).
# OMP_WAIT_POLICY=PASSIVE: an idle OpenMP thread sleeps instead of spinning, so jobs that together ask for more
# threads than there are cores share them: two 2-thread SFT jobs on 2 cores took 90 s each spinning and 26 s
# passive (two 1-thread jobs: 24 s). It changes no result (not the reductions' order, only how threads wait).
ENV = f"OMP_NUM_THREADS={THREADS} MKL_NUM_THREADS={THREADS} OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false"

ENVFILE = "../../environment.yml"  # the software of every rule (used with --use-conda)
VARIANTS = variant_names()
TASKS = list(config["tasks"])
BENCHMARKS = list(config["benchmarks"])



def q(value):
    """Shell-quote a value, JSON-encoding anything that is not a plain string."""
    return shlex.quote(value if isinstance(value, str) else json.dumps(value))


def sets(pairs):
    """`--set key=value ...` arguments (values JSON, which the YAML reader accepts)."""
    return " ".join(shlex.quote(f"{k}={json.dumps(v)}") for k, v in pairs)


def task_options(names):
    return {n: config.get("task_options", {}).get(n, {}) for n in names}


def method_config(variant, task):
    """The variant's config in this pipeline: configs/methods + config.method_config + the task's overrides."""
    merged = dict(load_variant(variant).config)
    merged.update(config.get("method_config", {}).get(variant, {}))
    merged.update(config["tasks"][task].get("method_config", {}).get(variant, {}))
    return merged


# Equal memory (config.memory_budget): these variants' n_t is measured per task by the memory_budget checkpoint.
BUDGET = config.get("memory_budget") or {}
BUDGET_METHODS = list(BUDGET.get("methods", []))
BUDGET_CANDIDATES = list(BUDGET.get("n_t", DEFAULT_CANDIDATES))


def n_t(variant, task):
    """The MC sample size a variant uses on a task (1 for one-pass methods).

    A variant of config.memory_budget gets the largest n_t that fits the budget on the task, as measured by the
    memory_budget checkpoint: a function that calls this is re-evaluated once the measurement exists."""
    if variant in BUDGET_METHODS:
        checkpoints.memory_budget.get()
        with open(f"{WORK}/budget/{task}.json") as f:
            return int(json.load(f)["n_t"][variant])
    return int(method_config(variant, task).get("n_t", 1))


def train_settings(task):
    merged = dict(config["train"])
    merged.update(config["tasks"][task].get("train", {}))
    return merged


def base_seed(seed):
    """The SFT seed of the base that RL seed ``seed`` starts from (config.base_seed: matched or fixed)."""
    if config["model"]["source"] != "sft":  # a hub model is one base, whatever the seed
        return 0
    return int(seed) if config.get("base_seed", "matched") == "matched" else 0


def base_seeds():
    """The SFT seeds of the bases Table 1's runs start from."""
    return list(dict.fromkeys(base_seed(s) for s in config["seeds"]))


def base_dir(task, seed):
    return f"{WORK}/models/base/{task}/seed{base_seed(seed)}"


def base_model(task, seed):
    return base_dir(task, seed) if config["model"]["source"] == "sft" else config["model"]["path"]


def base_inputs(task, seed):
    """The base model's files when the pipeline builds it (none for a hub model)."""
    if config["model"]["source"] != "sft":
        return []
    return [f"{base_dir(task, seed)}/sft_summary.json"]


def run_dir(variant, task, nt, seed):
    return f"{WORK}/runs/{variant}/{task}/nt{nt}/seed{seed}"


def run_model(w):
    """The checkpoint of run ``w`` (wildcards variant, task, nt, seed) that evaluations read."""
    return f"{run_dir(w.variant, w.task, w.nt, w.seed)}/{train_settings(w.task).get('checkpoint', 'final')}"


def run_meta(w):
    """``--meta`` columns of run ``w``'s evaluations (the benchmark is added per evaluation)."""
    return f"kind=rl method={w.variant} train_task={w.task} n_t={w.nt} seed={w.seed}"


def base_meta(task, seed):
    return f"kind=base method=base train_task={task} n_t=0 seed={base_seed(seed)}"


def is_own(task, bench, length):
    """Whether (bench, length) is one of the evaluations of a training task's own benchmarks."""
    return bench in config["tasks"][task]["benchmarks"] and int(length) == bench_length(bench)


def own_eval(folder):
    """The own-benchmark evaluations a training (or base) job writes when IN_JOB: one CSV for all of them."""
    return f"{folder}/own/metrics.csv"


def run_metrics(variant, task, nt, seed, bench, length):
    if IN_JOB and is_own(task, bench, length):
        return own_eval(f"{run_dir(variant, task, nt, seed)}/eval")
    return f"{run_dir(variant, task, nt, seed)}/eval/{bench}/len{length}/metrics.csv"


def base_in_job():
    return IN_JOB and config["model"]["source"] == "sft"


def base_eval_dir(task, seed):
    return f"{WORK}/eval/base/{task}/seed{base_seed(seed)}"


def base_metrics(task, bench, length, seed):
    if base_in_job() and is_own(task, bench, length):
        return own_eval(base_eval_dir(task, seed))
    return f"{base_eval_dir(task, seed)}/{bench}/len{length}/metrics.csv"


def then_evaluate(model, task, out, meta):
    """``--then`` commands evaluating ``model`` on ``task``'s own benchmarks into ``own_eval(out)``."""
    parts, files = [], []
    for bench in config["tasks"][task]["benchmarks"]:
        folder = f"{out}/own/{bench}"
        parts.append(f"--then evaluate --model {model} {_bench_args(bench, bench_length(bench))} "
                     f"--out-dir {folder} --meta {meta} benchmark={bench}")
        files.append(f"{folder}/metrics.csv")
    parts.append(f"--then report concat --inputs {' '.join(files)} --out {own_eval(out)}")
    return " ".join(parts)


def bench_length(bench):
    return int(config["benchmarks"][bench]["gen_length"])


def table1_runs():
    """(variant, task, n_t, seed) of Table 1: every method × task × seed at the method's n_t."""
    return [(v, t, n_t(v, t), s) for v in config["methods"] for t in TASKS for s in config["seeds"]]


def all_methods_runs():
    """(variant, task, n_t, seed) of table1_all: Table 1's runs and config.extra_methods' runs alike."""
    return [(v, t, n_t(v, t), s) for v in config["methods"] + EXTRA_METHODS for t in TASKS for s in config["seeds"]]


def unique(paths):
    """Paths without repeats, in order (a job's own-benchmark CSV holds several benchmarks)."""
    return list(dict.fromkeys(paths))


def own_metrics(runs):
    """Evaluation files of runs on their own tasks' benchmarks at the benchmarks' lengths."""
    return unique(run_metrics(v, t, n, s, b, bench_length(b)) for v, t, n, s in runs for b in config["tasks"][t]["benchmarks"])


def base_own_metrics():
    return unique(base_metrics(t, b, bench_length(b), s) for t in TASKS for b in config["tasks"][t]["benchmarks"]
                  for s in base_seeds())


# ---- helpers of models.smk
def _all_task_names():
    names = {n for spec in config["tasks"].values() for n in spec["tasks"]}
    return sorted(names | {spec["task"] for spec in config["benchmarks"].values()})

# ---- helpers of train.smk
def train_overrides(w):
    task = config["tasks"][w.task]
    settings = train_settings(w.task)
    temperature = settings.pop("temperature", 0.6)
    settings.pop("checkpoint", None)  # which checkpoint evaluation reads, not a trainer setting
    # Fast rollouts (README "Sampling"): written only when set, so a default run's config hash does not change.
    fast = {"cache": settings.pop("rollout_cache", "none"), "threshold": settings.pop("rollout_threshold", None)}
    fast = {k: v for k, v in fast.items() if v not in ("none", None)}
    method = method_config(w.variant, w.task)
    if "n_t" in method or int(w.nt) != 1:
        method["n_t"] = int(w.nt)
    rollout = {"gen_length": task["response_length"], "block_length": task["block_length"],
               "steps": task["rollout_steps"], "temperature": temperature, **fast}
    first = task["benchmarks"][0]
    bench = config["benchmarks"][first]
    eval_sampler = {"gen_length": bench["gen_length"], "block_length": bench["block_length"],
                    "steps": bench["steps"], "temperature": 0.0}
    model = {"path": base_model(w.task, w.seed), "dtype": config["model"].get("dtype", "float32")}
    for key in ("lora", "gradient_checkpointing"):
        if key in config["model"]:
            model[key] = config["model"][key]
    pairs = [
        ("model", model),
        ("data.tasks", task["tasks"]),
        ("data.eval_tasks", [config["benchmarks"][b]["task"] for b in task["benchmarks"]]),
        ("data.task_options", task_options(task["tasks"] + [config["benchmarks"][b]["task"] for b in task["benchmarks"]])),
        ("data.data_dir", config.get("data_dir")),
        ("method.variant", w.variant),
        ("method.config", method),
        ("train.seed", int(w.seed)),
        ("train.rollout", rollout),
        ("train.eval_sampler", eval_sampler),
        ("train.eval_every", settings.pop("eval_every", 0)),
    ]
    # The variant's own train settings (e.g. mini_batches: 2 for off-policy) apply below these.
    pairs += [(f"train.{k}", v) for k, v in settings.items()]
    return sets(pairs)

def budget_commands(wildcards, output):
    """``bgpo bench budget`` per training task, joined by ``--then`` (one process), then their CSVs into one."""
    model = config["model"]
    if model["source"] == "sft":
        source = (f"--tokenizer {WORK}/models/tokenizer --preset {model['preset']} "
                  f"--model-overrides {q(model.get('overrides', {}))}")
    else:
        source = f"--model {q(model['path'])}"
    commands, csvs = [], []
    for task, out in zip(TASKS, output.json):
        spec, settings = config["tasks"][task], train_settings(task)
        variants = {v: {"method": load_variant(v).method, **method_config(v, task)} for v in BUDGET_METHODS}
        csv = out.removesuffix(".json") + ".csv"
        args = [
            f"bench budget {source} --dtype {model.get('dtype', 'float32')} --tasks {' '.join(spec['tasks'])}",
            f"--task-options {q(task_options(spec['tasks']))} --method-configs {q(variants)}",
            f"--budget-mib {BUDGET['saved_mib']} --candidates {' '.join(map(str, BUDGET_CANDIDATES))}",
            # The full rollout batch: an upper bound for variants that update on mini-batches of it.
            f"--responses {settings['prompts_per_step'] * settings['group_size']}",
            f"--response-length {spec['response_length']} --block-length {spec['block_length']}",
            f"--rollout-steps {spec['rollout_steps']} --out {out} --csv {csv}",
        ]
        if settings.get("micro_batch_size"):
            args.append(f"--micro-batch-size {settings['micro_batch_size']}")
        if config.get("data_dir"):
            args.append(f"--data-dir {q(config['data_dir'])}")
        commands.append(" ".join(args))
        csvs.append(csv)
    commands.append(f"report concat --inputs {' '.join(csvs)} --out {output.csv}")
    return " --then ".join(commands)


# ---- helpers of evaluate.smk
def _bench_args(bench, length):
    spec = config["benchmarks"][bench]
    scale = int(length) / spec["gen_length"]
    steps = max(1, round(spec["steps"] * scale))
    block = spec["block_length"] if int(length) % spec["block_length"] == 0 else int(length)
    args = (f"--tasks {spec['task']} --task-options {q(task_options([spec['task']]))} --gen-length {length} "
            f"--block-length {block} --steps {steps} --batch-size {spec.get('batch_size', config.get('evaluate', {}).get('batch_size', 64))}")
    if spec.get("limit"):
        args += f" --limit {spec['limit']}" + (" --random-subset" if spec.get("random_subset") else "")
    if config.get("data_dir"):
        args += f" --data-dir {q(config['data_dir'])}"
    if PROTOCOL != CUSTOM:  # bgpo evaluate then refuses settings that contradict the protocol
        args += f" --protocol {PROTOCOL}"
    return args

# ---- helpers of tables.smk
from bgpo.tasks import get_task_class

TABLES = ["table1", "table2_nt", "table3_lemma", "table4_ood", "table6_length"]
# Table 1 with config.extra_methods too (the full results), when there are any.
if EXTRA_METHODS:
    TABLES.append("table1_all")


def _metric(bench):
    """The headline metric of a benchmark: the task's, or the one its protocol names (Sudoku)."""
    metric = get_task_class(config["benchmarks"][bench]["task"]).metric
    protocol = get_protocol(PROTOCOL)
    return protocol.metric(metric) if protocol is not None else metric


def _label(variant):
    return load_variant(variant).display_name


def _base_label():
    return "base (SFT)" if config["model"]["source"] == "sft" else os.path.basename(config["model"]["path"])


def _columns(benches):
    return [{"label": config["benchmarks"][b]["label"], "benchmark": b, "metric": _metric(b)} for b in benches]


def _own_benches():
    return list(dict.fromkeys(b for t in TASKS for b in config["tasks"][t]["benchmarks"]))


def table_inputs(name):
    return unique(_table_inputs(name))


def table_base_inputs(name):
    """The base evaluations among a table's inputs: known without the memory budget, so a rule that lists them
    apart from the runs lets Snakemake start the bases while the budget checkpoint runs."""
    return unique(base_own_metrics()) if BUDGET_METHODS and name in ("table1", "table1_all") else []


def table_run_inputs(name):
    """A table's other inputs (the runs: their paths carry n_t, which may await the budget checkpoint)."""
    bases = set(table_base_inputs(name))
    return [path for path in table_inputs(name) if path not in bases]


def _table_inputs(name):
    seeds, tables = config["seeds"], config.get("tables", {})
    if name == "table1":
        costs = [f"{run_dir(v, t, n, s)}/costs.csv" for v, t, n, s in table1_runs()]
        return base_own_metrics() + own_metrics(table1_runs()) + costs
    if name == "table1_all":
        return base_own_metrics() + own_metrics(all_methods_runs())
    if name == "table2_nt":
        spec = tables["table2"]
        runs = [(spec["variant"], spec["task"], n, s) for n in spec["n_t"] for s in seeds]
        return own_metrics(runs)
    if name == "table3_lemma":
        spec = tables["table3"]
        runs = [(v, spec["task"], n_t(v, spec["task"]), s) for v in spec["variants"] for s in seeds]
        return own_metrics(runs)
    if name == "table4_ood":
        spec = tables["table4"]
        files = [base_metrics(spec["tasks"][0], b, bench_length(b), s) for b in BENCHMARKS for s in base_seeds()]
        for t in spec["tasks"]:
            files += [run_metrics(spec["variant"], t, n_t(spec["variant"], t), s, b, bench_length(b))
                      for s in seeds for b in BENCHMARKS]
        return files
    if name == "table6_length":
        spec = tables["table6"]
        files = []
        for t in TASKS:
            for b in config["tasks"][t]["benchmarks"]:
                for length in _lengths(b, spec):
                    files += [run_metrics(spec["variant"], t, n_t(spec["variant"], t), s, b, length) for s in seeds]
        return files
    raise ValueError(f"unknown table {name!r}; valid: {', '.join(TABLES)}")


def all_targets(wildcards):
    """Every table, figure and evaluation of the config (rule all; a function, as n_t may await the budget)."""
    targets = [f"{RESULTS}/{t}.csv" for t in TABLES] + [f"{RESULTS}/table1_paired.csv", f"{RESULTS}/runs.csv"]
    targets += [f"{RESULTS}/figures/{name}.png"
                for name in ("fig1_memory", "fig2_reward_curves", "fig3_grad_std_bias", "fig3_step_time")]
    if BUDGET_METHODS:
        targets.append(f"{RESULTS}/memory_budget.csv")
    # Every evaluation, listed here too: Snakemake does not remake a deleted intermediate file whose consumers
    # are up to date, but it does remake the inputs of this target rule, so deleting one run's folder reruns
    # exactly that run, its evaluations and what aggregates them.
    return targets + sorted({path for table in TABLES for path in table_inputs(table)})


def _table1_note():
    """What Table 1's ± covers and what its cost columns are (the caption)."""
    seeds = ", ".join(map(str, config["seeds"]))
    design = ("each RL seed starts from the SFT base trained with the same seed, so the spread includes the base's "
              "own" if config.get("base_seed", "matched") == "matched" and config["model"]["source"] == "sft"
              else "every run starts from the same base")
    fixed = [v for v in config["methods"] if "n_t" in method_config(v, TASKS[0]) and v not in BUDGET_METHODS]
    n_ts = ", ".join(f"{_label(v)} {n_t(v, TASKS[0])}" for v in fixed)
    if BUDGET_METHODS:
        listed = ", ".join(_label(v) for v in BUDGET_METHODS if v in config["methods"])
        n_ts = "; ".join(filter(None, [n_ts, (
            f"{listed}: the largest of {', '.join(map(str, BUDGET_CANDIDATES))} whose bytes saved "
            f"for backward fit {BUDGET['saved_mib']:g} MiB on each task (equal memory; memory_budget.csv, and the "
            "n_t column of runs.csv)")]))
    return (f"± is the standard deviation over seeds {seeds} ({design}; seed s also fixes the data order and the "
            f"rollout noise). MC sample sizes n_t: {n_ts}. Cost columns: peak bytes saved for backward in a "
            "training step (MiB) and seconds per step, each seed's average over tasks (mean ± std over seeds).")


def paired_spec():
    """Table 1's paired comparisons (config.tables.paired): each pair's difference, seed by seed, per benchmark."""
    pairs = config.get("tables", {}).get("paired", {}).get("pairs", [])
    return {
        "title": "Table 1, paired differences",
        "pairs": [{"label": f"{_label(a)} − {_label(b)}", "a": {"kind": "rl", "method": a},
                   "b": {"kind": "rl", "method": b}} for a, b in pairs],
        "columns": _columns(_own_benches()),
        "protocol": PROTOCOL,
        "note": _table1_note(),
    }


def _lengths(bench, spec):
    base = bench_length(bench)
    return [int(x) if spec.get("absolute") else int(round(x * base)) for x in spec["lengths"]]


def table_joins(name):
    """``{source: csv}`` a table's columns read besides the runs: Table 2 reads Fig. 3's gradient std."""
    spec, diag = config.get("tables", {}).get("table2", {}), config.get("figures", {}).get("diagnostics", {})
    if name == "table2_nt" and diag.get("task") == spec.get("task") and spec.get("variant") in diag.get("methods", []):
        return {"diagnostics": f"{RESULTS}/figures/fig3_grad_std_bias.csv"}
    return {}


def table_spec(name):
    return {**_table_spec(name), "protocol": PROTOCOL}


def _table_spec(name):
    tables = config.get("tables", {})
    if name == "table1":
        rows = [{"label": _base_label(), "where": {"kind": "base"}}]
        rows += [{"label": _label(v), "where": {"kind": "rl", "method": v}} for v in config["methods"]]
        # What each row cost, measured in the same runs (mean over tasks and seeds): the memory its objective keeps
        # alive and the time per training step on the machine that ran it.
        # A seed's cost is its average over tasks ("average"), so the ± is a spread over seeds like the others.
        costs = [{"label": "saved MiB", "benchmark": "cost", "metric": "peak_saved_mib", "scale": 1,
                  "average": "train_task"},
                 {"label": "s / step", "benchmark": "cost", "metric": "step_seconds", "scale": 1,
                  "average": "train_task"}]
        return {"title": "Table 1: main results", "rows": rows, "columns": _columns(_own_benches()) + costs,
                "note": _table1_note()}
    if name == "table1_all":
        rows = [{"label": _base_label(), "where": {"kind": "base"}}]
        rows += [{"label": _label(v), "where": {"kind": "rl", "method": v}} for v in config["methods"] + EXTRA_METHODS]
        return {"title": "Table 1 with further methods (config.extra_methods)", "rows": rows,
                "columns": _columns(_own_benches())}
    if name == "table2_nt":
        spec = tables["table2"]
        rows = [{"label": f"n_t = {n}", "where": {"method": spec["variant"], "n_t": n}} for n in spec["n_t"]]
        benches = config["tasks"][spec["task"]]["benchmarks"]
        columns, note = _columns(benches), None
        if table_joins(name):
            # Where accuracy at this scale cannot resolve the n_t effect, the variance of the gradient can: Fig. 3's
            # std of the gradient estimate at each n_t, measured on the same task's base.
            columns.append({"label": "gradient std", "source": "diagnostics", "metric": "std", "format": ".3g"})
            note = ("gradient std: the standard deviation of the gradient estimate at each n_t over repeated MC "
                    f"draws on the same rollouts, on the {spec['task']} base (Fig. 3, fig3_grad_std_bias.csv), "
                    "with its bootstrap 95% interval.")
        return {"title": f"Table 2: MC sample size ({_label(spec['variant'])} trained on {spec['task']})",
                "rows": rows, "columns": columns, **({"note": note} if note else {})}
    if name == "table3_lemma":
        spec = tables["table3"]
        rows = [{"label": _label(v), "where": {"method": v}} for v in spec["variants"]]
        benches = config["tasks"][spec["task"]]["benchmarks"]
        return {"title": f"Table 3: bound ablation (off-policy, trained on {spec['task']})", "rows": rows,
                "columns": _columns(benches)}
    if name == "table4_ood":
        spec = tables["table4"]
        # With SFT bases per task, the base row is one task's: not the starting policy of the other rows, so it is
        # labelled by its task (bgpo compare then draws no "RL beats base" conclusion from it).
        sft = config["model"]["source"] == "sft"
        base = f"SFT base of {spec['tasks'][0]}" if sft else _base_label()
        rows = [{"label": base, "where": {"kind": "base"}}]
        rows += [{"label": f"{_label(spec['variant'])} trained on {t}", "where": {"kind": "rl", "train_task": t}}
                 for t in spec["tasks"]]
        return {"title": "Table 4: out-of-domain evaluation", "rows": rows, "columns": _columns(BENCHMARKS),
                **({"note": f"The base row is the base of {spec['tasks'][0]}; each other row started from the base "
                            "of its own training task."} if sft else {})}
    if name == "table6_length":
        spec = tables["table6"]
        rows = []
        for i, x in enumerate(spec["lengths"]):
            label = f"{int(x)} tokens" if spec.get("absolute") else f"× {x:g}"
            cells = {config["benchmarks"][b]["label"]: {"gen_length": _lengths(b, spec)[i]} for b in _own_benches()}
            rows.append({"label": label, "where": {"kind": "rl"}, "column_where": cells})
        return {"title": f"Table 6: inference length ({_label(spec['variant'])} models)", "rows": rows,
                "columns": _columns(_own_benches())}
    raise ValueError(name)

# ---- helpers of figures.smk
def _table1_logs():
    return {f"{t}|{_label(v)}|{s}": f"{run_dir(v, t, n, s)}/log.jsonl" for v, t, n, s in table1_runs()}


def cli_args(options):
    """Command-line flags from a config mapping: lists as several values, true as a bare flag."""
    out = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out.append(f"{flag} {' '.join(map(str, value))}")
        elif value is not False and value is not None:
            out.append(f"{flag} {q(value)}")
    return " ".join(out)


# ---- cluster resources (profiles/slurm; README "Running on a SLURM cluster")
def rule_resources(group=None):
    """A rule's resources from config.resources: all_jobs, then gpu_jobs when ``group`` asks for a GPU, then the
    group's own (sft, train, evaluate, bench, diagnose). A null value is left out (the cluster's default); the
    profile's default-resources fill in what none of them sets, and a rule's CPUs are its threads."""
    spec = config.get("resources", {})
    own = spec.get(group, {}) if group else {}
    merged = dict(spec.get("all_jobs", {}))
    if own.get("gpu") or "gpu" in str(own.get("gres", "")):
        merged.update(spec.get("gpu_jobs", {}))
    merged.update(own)
    return {key: value for key, value in merged.items() if value is not None}
