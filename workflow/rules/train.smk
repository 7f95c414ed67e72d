# train {variant} × {task} × {n_t} × {seed}: one `bgpo train` run. Every method gets the same trainer settings
# (config.train plus the task's own), its variant's config and the n_t of the path.


rule train:
    input:
        lambda w: base_inputs(w.task, w.seed),
    output:
        f"{WORK}/runs/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}/summary.json",
        # Its costs (peak bytes saved for backward, seconds per step) as tidy rows: Table 1's cost columns.
        f"{WORK}/runs/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}/costs.csv",
        # With evaluate.in_training_job, the model's own benchmarks are evaluated by this job too.
        *([own_eval(f"{WORK}/runs/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}/eval")] if IN_JOB else []),
    log:
        f"{WORK}/logs/train/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}.log",
    threads: THREADS
    resources:
        **rule_resources("train"),
    params:
        env=ENV,
        settings=train_overrides,
        launch=config.get("launch", "bgpo"),
        out=lambda w: run_dir(w.variant, w.task, w.nt, w.seed),
        meta=run_meta,
        evaluate=lambda w: then_evaluate(
            run_model(w), w.task, f"{run_dir(w.variant, w.task, w.nt, w.seed)}/eval", run_meta(w)
        ) if IN_JOB else "",
        # The costs are tabulated in the training process where it is one process (a torch import less per run,
        # ~2.5 s CPU); after it, once, where a launcher starts several ranks.
        costs_after="--then" if config.get("launch", "bgpo") == "bgpo" else "&& bgpo",
    conda:
        ENVFILE
    shell:
        # --resume continues a run that was killed (its checkpoints are in the output folder).
        "({params.env} {params.launch} train --set {params.settings} --output-dir {params.out} --resume "
        "{params.evaluate} {params.costs_after} report costs --log {params.out}/log.jsonl --meta {params.meta} "
        "--out {params.out}/costs.csv) > {log} 2>&1"



# The equal-memory budget (config.memory_budget): per training task, each listed variant's n_t is the largest
# candidate whose bytes saved for backward in one update fit the budget, measured at the task's training shape on
# new weights of the model's preset (sizes depend on shapes, not weights: no base needs to exist yet), all tasks
# in one process. A checkpoint: the runs' paths (their n_t) are known once it has run.
checkpoint memory_budget:
    input:
        [] if config["model"]["source"] != "sft" else rules.tokenizer.output,
    output:
        json=[f"{WORK}/budget/{t}.json" for t in TASKS],
        csv=f"{RESULTS}/memory_budget.csv",
    log:
        f"{WORK}/logs/budget.log",
    threads: THREADS
    resources:
        **rule_resources("bench"),
    params:
        env=ENV,
        commands=budget_commands,
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo {params.commands} > {log} 2>&1"
