import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, with the reason shown (``-ra``), where torch sees no
    CUDA GPU; bench/gpu_check.sh runs them on a GPU machine."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="cuda: no CUDA GPU on this machine")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mini(tmp_path_factory):
    """The mini reduced set, built once per test session (later uses only verify it)."""
    from tfckd_lite.data import build_dataset

    return build_dataset(tmp_path_factory.getbasetemp() / "mini", "mini", progress=False)


@pytest.fixture(scope="session")
def mc_mini(tmp_path_factory):
    """The simulated multi-channel set mc-mini (L3DAS23 layout), built once per test session."""
    from tfckd_lite.data import build_dataset

    return build_dataset(tmp_path_factory.getbasetemp() / "mc-mini", "mc-mini", progress=False)


@pytest.fixture(scope="session")
def splits(mini):
    """The mini set's training and validation splits (the training-engine tests' data)."""
    from tfckd_lite.data import open_corpus

    return open_corpus(mini, "train"), open_corpus(mini, "valid")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny-tensor tests on one thread: small shapes gain nothing from threads,
    and on a shared 2-core machine OpenMP's spinning threads can slow such ops a hundredfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SimulatedKill(Exception):
    """Raised inside a training step to stand for Ctrl-C or a killed process."""


@pytest.fixture
def kill_at_step():
    """``kill_at_step(task, n)``: make the task's n-th forward call raise SimulatedKill."""

    def arm(task, n: int):
        original_forward = task.forward
        calls = {"n": 0}

        def dying_forward(*args):
            calls["n"] += 1
            if calls["n"] == n:
                raise SimulatedKill()
            return original_forward(*args)

        task.forward = dying_forward
        return SimulatedKill

    return arm


@pytest.fixture(scope="module")
def tiny_teacher():
    """The tiny teacher of tests/tiny_models.py with its fixed random weights, in eval mode."""
    import torch

    from tfckd_lite.models import DPDCRN
    from tiny_models import TEACHER, TEACHER_SEED

    torch.manual_seed(TEACHER_SEED)
    return DPDCRN(TEACHER).eval()


@pytest.fixture
def close_figures():
    """Close every matplotlib figure a test opened (for modules that draw many)."""
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


@pytest.fixture(scope="module")
def test_split(mini):
    """The mini set's test split."""
    from tfckd_lite.data import open_corpus

    return open_corpus(mini, "test")
