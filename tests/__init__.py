"""The test suite: ``pytest`` (README "Quick start"); ``pytest -m slow`` adds the slow tests."""
