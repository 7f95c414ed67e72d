# evaluate: greedy decoding of a benchmark by the base or a trained model, at a given response length.


rule evaluate_base:
    input:
        lambda w: base_inputs(w.task, w.seed),
    output:
        f"{WORK}/eval/base/{{task}}/seed{{seed}}/{{bench}}/len{{length}}/metrics.csv",
    log:
        f"{WORK}/logs/eval/base/{{task}}/seed{{seed}}/{{bench}}/len{{length}}.log",
    threads: THREADS
    resources:
        **rule_resources("evaluate"),
    params:
        env=ENV,
        args=lambda w: _bench_args(w.bench, w.length),
        model=lambda w: base_model(w.task, w.seed),
        meta=lambda w: f"{base_meta(w.task, w.seed)} benchmark={w.bench}",
        out=lambda w: f"{base_eval_dir(w.task, w.seed)}/{w.bench}/len{w.length}",
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo evaluate --model {params.model} {params.args} --out-dir {params.out} --meta {params.meta} > {log} 2>&1"


rule evaluate_run:
    input:
        f"{WORK}/runs/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}/summary.json",
    output:
        # Inside the run's folder: deleting one run's folder reruns exactly that run and its evaluations.
        f"{WORK}/runs/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}/eval/{{bench}}/len{{length}}/metrics.csv",
    log:
        f"{WORK}/logs/eval/runs/{{variant}}/{{task}}/nt{{nt}}/seed{{seed}}/{{bench}}/len{{length}}.log",
    threads: THREADS
    resources:
        **rule_resources("evaluate"),
    params:
        env=ENV,
        args=lambda w: _bench_args(w.bench, w.length),
        model=run_model,
        meta=lambda w: f"{run_meta(w)} benchmark={w.bench}",
        out=lambda w: f"{run_dir(w.variant, w.task, w.nt, w.seed)}/eval/{w.bench}/len{w.length}",
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo evaluate --model {params.model} {params.args} --out-dir {params.out} --meta {params.meta} > {log} 2>&1"
