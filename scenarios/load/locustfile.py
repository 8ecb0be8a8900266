"""Locust entry point: one Locust user = one company of a Baileys service.

    AUTHSTATE_DSN=postgresql://... locust -f scenarios/load/locustfile.py --headless \
        -u 100 -r 100 -t 60s [--processes 2] [--csv out/locust --html out/locust.html]

Pick the profile with AUTHSTATE_PROFILE (steady, first-connect, reconnect-storm, group-heavy,
ramp, spike, soak) and the store with AUTHSTATE_TARGET (default reference); the other variables
are listed in harness/load/settings.py. Request names are the store operations (`keys.get
session`, `keys.set pre-key x812`, `creds.save`, ...); a failure carries the store's message.
At the end an HDR latency table (µs-exact percentiles) is printed beside Locust's own.

The logic lives in harness/load/ (testable without Locust); this file only binds it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from harness.errors import HarnessError
from harness.load.settings import NO_DSN_MESSAGE, LoadSettings, MissingDsn

try:
    SETTINGS = LoadSettings.from_env()
except MissingDsn:
    sys.exit(NO_DSN_MESSAGE)
except HarnessError as exc:  # a bad AUTHSTATE_* value: say which and how to fix it
    sys.exit(str(exc))

from harness.load import real_threads

real_threads.install()  # Locust's monkey-patching turns threads into greenlets: not the store's

from harness.load.locust_users import CompanyUser, install, make_shape  # noqa: E402

install()


class Company(CompanyUser):
    """A company running the AUTHSTATE_PROFILE traffic (default steady)."""

    profile = SETTINGS.profile


if SETTINGS.profile.shape is not None:
    ProfileShape = make_shape(SETTINGS.profile)
