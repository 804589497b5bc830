import secrets

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A NumPy generator with a fresh seed per test; the seed is printed when the test fails."""
    seed = secrets.randbits(32)
    request.node.user_properties.append(("seed", seed))
    print(f"random seed: {seed}")
    return np.random.default_rng(seed)
