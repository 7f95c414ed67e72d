# data → tokenizer → base: the embedded default's starting policy (model.source: sft). With model.source: hub
# (the paper config) the base is the hub model and these rules are not used.


rule data:
    output:
        f"{WORK}/data/{{name}}/manifest.json",
    log:
        f"{WORK}/logs/data/{{name}}.log",
    resources:
        **rule_resources(),
    params:
        env=ENV,
        out=lambda w, output: os.path.dirname(output[0]),
        options=lambda w: q(task_options([w.name])[w.name]),
        data_dir=lambda w: f"--data-dir {q(config['data_dir'])}" if config.get("data_dir") else "",
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo data --task {wildcards.name} --options {params.options} {params.data_dir} "
        "--out {params.out} > {log} 2>&1"


rule tokenizer:
    input:
        [f"{WORK}/data/{name}/manifest.json" for name in _all_task_names()],
    output:
        f"{WORK}/models/tokenizer/tokenizer.json",
    log:
        f"{WORK}/logs/tokenizer.log",
    resources:
        **rule_resources(),
    params:
        env=ENV,
        out=lambda w, output: os.path.dirname(output[0]),
        tasks=" ".join(_all_task_names()),
        options=q(task_options(_all_task_names())),
        vocab=config["model"].get("vocab_size", 96),
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo tokenizer --tasks {params.tasks} --task-options {params.options} --vocab-size {params.vocab} "
        "--out {params.out} > {log} 2>&1"


rule base:
    input:
        rules.tokenizer.output,
    output:
        f"{WORK}/models/base/{{task}}/seed{{seed}}/sft_summary.json",
        # With evaluate.in_training_job, the base is evaluated on the task's own benchmarks by this job too.
        *([own_eval(f"{WORK}/eval/base/{{task}}/seed{{seed}}")] if base_in_job() else []),
    log:
        f"{WORK}/logs/base/{{task}}/seed{{seed}}.log",
    threads: THREADS
    resources:
        **rule_resources("sft"),
    params:
        env=ENV,
        out=lambda w, output: os.path.dirname(output[0]),
        settings=lambda w: sets(
            [
                ("tasks", config["tasks"][w.task]["tasks"]),
                ("task_options", task_options(config["tasks"][w.task]["tasks"])),
                ("tokenizer", f"{WORK}/models/tokenizer"),
                ("preset", config["model"]["preset"]),
                ("model_overrides", config["model"].get("overrides", {})),
                ("dtype", config["model"].get("dtype", "float32")),
                ("response_length", config["tasks"][w.task]["response_length"]),
                *{**config.get("sft", {}), **config["tasks"][w.task].get("sft", {})}.items(),
                ("seed", int(w.seed)),
            ]
        ),
        evaluate=lambda w: then_evaluate(
            base_model(w.task, w.seed), w.task, base_eval_dir(w.task, w.seed), base_meta(w.task, w.seed)
        ) if base_in_job() else "",
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo sft --set {params.settings} --output-dir {params.out} {params.evaluate} > {log} 2>&1"
