"""Benchmarks of the pipeline: ``python -m benchmarks <subcommand> [options]`` (``--help`` lists
them). Each prints its figures and their ratios side by side in one run. They are not part of
the library: nothing in pipeline/ or stages/ imports them."""
