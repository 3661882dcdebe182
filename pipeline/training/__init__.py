"""Training: one loop for every model (teachers, the scratch student, distilled students).

    params.py   the `train` section (no torch)
    batches.py  each epoch's seeded order and its batches: the one owner, read by the loop and by
                the teacher cache, so both see the same batches
    state.py    a run's records: RunSpec (who, where), Progress (finished epochs), Trainer (its parts)
    resume.py   the resume file written after every epoch
    loop.py     fit: restore -> per epoch train, evaluate, save -> finish
    setup.py    what every training stage does first: seeds, device, inputs, the teachers

This package's __init__ imports nothing, so ``pipeline.training.params`` stays light.
"""
