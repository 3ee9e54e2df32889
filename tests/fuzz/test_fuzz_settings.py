"""Property-based test: any PMRUNNER_* values give settings or one ConfigurationError line."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from pmrunner.errors import ConfigurationError
from tests.fuzz.checks import FUZZ
from tests.fuzz.strategies import HUGE_INTEGER
from worker.settings import Settings

NAMES = ["PMRUNNER_" + spec.name.upper() for spec in fields(Settings)]
VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["0", "-1", "1e309", "nan", "inf", HUGE_INTEGER, " 5 ", "a,b", "deny"]),
)


@FUZZ
@given(environ=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6))
def test_settings_from_the_environment(environ: dict[str, str]) -> None:
    try:
        Settings.from_env(environ)
    except ConfigurationError as error:
        message = str(error)
        assert "\n" not in message and any(name in message for name in environ), message
