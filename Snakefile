# convergence: how similarly do neural networks represent the same stimuli?
# This file is a table of contents; rules live in workflow/rules/, logic in src/convergence/.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the user names their own config file (--configfile studies/prh.yaml):
# a study config replaces the default instead of being deep-merged into it. --config key=value still
# overrides single values of whichever file is in use.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/stimuli.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/kernels.smk"
include: "workflow/rules/alignment.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
