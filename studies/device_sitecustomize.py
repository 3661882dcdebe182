"""Start-up hook for the lent GPU machine only: studies/device-run.sh copies it, as
sitecustomize.py, into the folder of carried wheels on PYTHONPATH.

That machine has DVC's Python package but not its Git layer (scmrepo, dulwich, pygit2: tens of
MB of wheels), and DVCLive's constructor looks for a DVC repository through it. Runs there are no
DVC experiments (pipeline.study runs the stage modules directly), so the look-up is skipped;
DVCLive writes its metrics and curves as everywhere else."""
try:
    from dvclive.live import Live

    Live._init_dvc = lambda self: None
except ImportError:  # no DVCLive: nothing to adjust
    pass
