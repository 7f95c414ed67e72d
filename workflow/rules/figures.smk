# Figures: memory vs n_t (Fig. 1), training reward curves (Fig. 2), gradient std and bias (Fig. 3 left and
# middle), step time split (Fig. 3 right).


rule fig_reward_curves:
    input:
        lambda w: [f"{run_dir(v, t, n, s)}/summary.json" for v, t, n, s in table1_runs()],
    output:
        report(f"{RESULTS}/figures/fig2_reward_curves.png", category="Figures", caption="../report/fig2.rst"),
    log:
        f"{WORK}/logs/figures/fig2.log",
    resources:
        **rule_resources(),
    params:
        logs=lambda w: q(_table1_logs()),
    conda:
        ENVFILE
    shell:
        "bgpo report curves --logs {params.logs} --out {output} > {log} 2>&1"


rule fig_step_time:
    input:
        lambda w: [f"{run_dir(v, t, n, s)}/summary.json" for v, t, n, s in table1_runs()],
    output:
        png=report(f"{RESULTS}/figures/fig3_step_time.png", category="Figures", caption="../report/fig3_time.rst"),
        csv=f"{RESULTS}/figures/fig3_step_time.csv",
    log:
        f"{WORK}/logs/figures/fig3_step_time.log",
    resources:
        **rule_resources(),
    params:
        logs=lambda w: q(_table1_logs()),
    conda:
        ENVFILE
    shell:
        "bgpo report step-time --logs {params.logs} --out {output.png} --csv {output.csv} > {log} 2>&1"


rule fig_memory:
    output:
        png=report(f"{RESULTS}/figures/fig1_memory.png", category="Figures", caption="../report/fig1.rst"),
        csv=f"{RESULTS}/figures/fig1_memory.csv",
    log:
        f"{WORK}/logs/figures/fig1.log",
    threads: THREADS
    resources:
        **rule_resources("bench"),
    params:
        env=ENV,
        args=lambda w: cli_args(config.get("figures", {}).get("memory", {})),
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo bench memory {params.args} --out {output.csv} --plot {output.png} > {log} 2>&1"


rule fig_gradients:
    input:
        base_inputs(config["figures"]["diagnostics"]["task"], 0),
    output:
        png=report(f"{RESULTS}/figures/fig3_grad_std_bias.png", category="Figures", caption="../report/fig3_grad.rst"),
        csv=f"{RESULTS}/figures/fig3_grad_std_bias.csv",
    log:
        f"{WORK}/logs/figures/fig3_grad.log",
    threads: THREADS
    resources:
        **rule_resources("diagnose"),
    params:
        env=ENV,
        model=lambda w: base_model(config["figures"]["diagnostics"]["task"], 0),
        args=lambda w: cli_args({k: v for k, v in config["figures"]["diagnostics"].items() if k != "task"}),
    conda:
        ENVFILE
    shell:
        "{params.env} bgpo diagnose --model {params.model} {params.args} --out {output.csv} --plot {output.png} > {log} 2>&1"
