"""The parsed Bicep of infra/, read once for both test modules here (a Project is immutable:
`mutated` returns a changed copy)."""

from __future__ import annotations

import pytest

from tests.infra.test_bicep_security import Project


@pytest.fixture(scope="session")
def project() -> Project:
    return Project.load()
