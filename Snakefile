# The BGPO pipeline: data → tokenizer → base → train {method} × {task} × {n_t} × {seed} → evaluate → aggregate
# → tables and figures. With no arguments it runs the embedded default (config/config.yaml): a tiny model on
# generated tasks, CPU only, offline.
#
#   snakemake -j4 results/table1.csv                                      # Table 1 of the default
#   snakemake -j4                                                         # every table and figure
#   snakemake -n --configfile config/paper.yaml results/table1.csv        # the paper's DAG (LLaDA-8B)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml     # ... on a SLURM cluster

import os
import sys

# The rules call `bgpo`: the environment running Snakemake goes first on PATH, so its `bgpo` is found without an
# activated environment, here and in cluster jobs (a SLURM job runs this Snakefile with the same Python).
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))

# The embedded default. A --configfile replaces it (Snakemake would otherwise merge the two key by key).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
wildcard_constraints:
    variant="|".join(VARIANTS),
    task="|".join(TASKS),
    bench="|".join(BENCHMARKS),
    nt=r"\d+",
    seed=r"\d+",
    length=r"\d+",


include: "workflow/rules/models.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        all_targets,
