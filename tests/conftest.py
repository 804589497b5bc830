import secrets

import numpy as np
import pytest
import torch

# Crash isolation of the property tests (tests/test_properties_*.py): see property_isolation.py.
from property_isolation import (  # noqa: F401  (pytest hooks)
    pytest_configure,
    pytest_runtest_logfinish,
    pytest_runtest_logreport,
    pytest_runtest_logstart,
    pytest_runtest_protocol,
    pytest_unconfigure,
)

# Hypothesis profiles for the property tests.  "default" keeps them at about a minute in `make test`
# (fresh random examples on every run; a failure prints the blob that reproduces it);
# "thorough" (`make fuzz`, or `pytest --hypothesis-profile=thorough`) tries ~1000 examples per test.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property modules then fail to import, by name; the other tests still run
    pass
else:
    _HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("default", max_examples=60, deadline=None, derandomize=False, print_blob=True,
                              suppress_health_check=_HEALTH)
    settings.register_profile("thorough", max_examples=1000, deadline=None, derandomize=False,
                              print_blob=True, suppress_health_check=_HEALTH)
    settings.load_profile("default")


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
