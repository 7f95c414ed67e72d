# aggregate → tables. Each table has its own tidy aggregate (the rows of runs.csv it needs), so asking for
# Table 1 runs Table 1's experiments only; results/runs.csv is the union of all of them.
rule aggregate:
    input:
        # Two input functions: the bases' evaluations need no n_t, so they are planned before the budget is known.
        bases=lambda w: table_base_inputs(w.table),
        runs=lambda w: table_run_inputs(w.table),
    output:
        f"{WORK}/aggregate/{{table}}.csv",
    log:
        f"{WORK}/logs/aggregate/{{table}}.log",
    wildcard_constraints:
        table="|".join(TABLES),
    resources:
        **rule_resources(),
    conda:
        ENVFILE
    shell:
        "bgpo report aggregate --inputs {input} --out {output} > {log} 2>&1"


rule runs_csv:
    input:
        [f"{WORK}/aggregate/{t}.csv" for t in TABLES],
    output:
        f"{RESULTS}/runs.csv",
    log:
        f"{WORK}/logs/aggregate/runs.log",
    resources:
        **rule_resources(),
    conda:
        ENVFILE
    shell:
        "bgpo report concat --inputs {input} --out {output} > {log} 2>&1"


rule table:
    input:
        runs=f"{WORK}/aggregate/{{table}}.csv",
        joins=lambda w: list(table_joins(w.table).values()),
    output:
        csv=report(f"{RESULTS}/{{table}}.csv", category="Tables"),
        md=f"{RESULTS}/{{table}}.md",
    log:
        f"{WORK}/logs/tables/{{table}}.log",
    wildcard_constraints:
        table="|".join(TABLES),
    resources:
        **rule_resources(),
    params:
        spec=lambda w: q(table_spec(w.table)),
        joins=lambda w: " ".join(["--join"] + [f"{k}={v}" for k, v in table_joins(w.table).items()])
        if table_joins(w.table) else "",
        paper=lambda w: f"--paper {RESULTS}/paper/{w.table}.csv" if os.path.exists(f"{RESULTS}/paper/{w.table}.csv") else "",
    conda:
        ENVFILE
    shell:
        "bgpo report table --runs {input.runs} --spec {params.spec} --out {output.csv} --markdown {output.md} "
        "{params.paper} {params.joins} > {log} 2>&1"


rule paired:
    input:
        runs=f"{WORK}/aggregate/table1.csv",
    output:
        csv=report(f"{RESULTS}/table1_paired.csv", category="Tables"),
        md=f"{RESULTS}/table1_paired.md",
    log:
        f"{WORK}/logs/tables/table1_paired.log",
    resources:
        **rule_resources(),
    params:
        spec=lambda w: q(paired_spec()),
    conda:
        ENVFILE
    shell:
        "bgpo report paired --runs {input.runs} --spec {params.spec} --out {output.csv} --markdown {output.md} "
        "> {log} 2>&1"

