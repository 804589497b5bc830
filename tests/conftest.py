import secrets

import numpy as np
import pytest
import torch


@pytest.fixture
def rng(request):
    """A NumPy generator with a fresh seed per test; the seed is printed when the test fails."""
    seed = secrets.randbits(32)
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def one_thread():
    """Runs a module's tests with one torch thread, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
