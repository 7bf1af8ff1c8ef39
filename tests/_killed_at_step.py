"""``python tests/_killed_at_step.py N train ...``: the ``train`` command of the CLI, but every
process exits at once (``os._exit``, no clean-up, as a killed job does) when it reaches its
N-th optimizer step. test_distributed.py launches it under torchrun to kill a distributed run
mid-epoch, then resumes the run with the plain command."""

import os
import sys

from tfckd_lite import cli, train

stop_at = int(sys.argv[1])
step = train.engine._optimisation_step
calls = 0


def dying_step(*args, **kwargs):
    global calls
    calls += 1
    if calls == stop_at:
        sys.stdout.flush()
        os._exit(9)
    return step(*args, **kwargs)


train.engine._optimisation_step = dying_step
sys.exit(cli.main(sys.argv[2:]))
