"""The end-to-end tests' marker: `pytest -k "not e2e"` leaves them out (`-m` would replace the default `-m "not stress"`)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: boots a Debian 12 tree under the real systemd (minutes; root)")
