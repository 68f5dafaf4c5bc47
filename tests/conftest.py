"""Suite-wide settings.

Property-based tests are derandomized in the suite, so that CI is repeatable: the
same examples every run. For a longer, random hunt:
``HYPOTHESIS_PROFILE=hunt PROPERTY_EXAMPLES=1500 .venv/bin/pytest tests/test_properties.py``.
"""

import os

from hypothesis import settings

settings.register_profile("suite", derandomize=True, deadline=None, database=None)
settings.register_profile("hunt", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
