"""The runner: what a scenario's run means to its user, above the kernel (DESIGN.md §2).

The kernel (`kernel.system.System`) runs a scenario and answers plain
queries — why the run ended, the wait-for graph, the ready lists, the
threads' results. The runner turns those into what the scenario file and
the command line promise: `expect` judges the scenario's expectations,
`summary` builds the `run --json` summary (and its text form), `script`
runs the scenario's console ``script:``.
"""
