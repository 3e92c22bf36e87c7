# convergence: how similarly do neural networks represent the same stimuli?
# This file is a table of contents; rules live in workflow/rules/, logic in src/convergence/.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the user names their own config file (--configfile studies/prh.yaml):
# a study config replaces the default instead of being deep-merged into it. --config key=value still
# overrides single values of whichever file is in use.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# `snakemake --report report.html`: this description, the run's config, and every figure with its caption
# (figures are marked with report() in the rules files; captions live in workflow/report/<analysis>/).
report: "workflow/report/workflow.rst"


# The stages every analysis builds on: stimuli -> embed -> kernel.
include: "workflow/rules/common.smk"
include: "workflow/rules/stimuli.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/kernels.smk"


# The analyses: one rules file each (its rules, its figures, its target function), one config section
# each. Every file in workflow/rules/analyses/ is included, so adding an analysis edits nothing here.
for analysis_rules in sorted(Path(workflow.basedir, "workflow", "rules", "analyses").glob("*.smk")):

    include: analysis_rules


rule all:
    default_target: True
    input:
        get_final_output(),
