"""The README documents every status and reason code the code can produce."""

import re

from execd.model.reasons import REASONS, STATUSES
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_every_status_and_reason_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README, re.MULTILINE))
    assert set(STATUSES) | set(REASONS) <= documented
    stale = documented - set(STATUSES) - set(REASONS)
    assert not stale, f"README documents codes that no longer exist: {stale}"


def test_every_reason_constant_is_in_the_table() -> None:
    import execd.model.reasons as module

    constants = {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(REASONS)


def test_the_readme_lists_exactly_the_exchanges_execd_supports() -> None:
    from execd.venues.ccxt import exchanges

    text = README
    listed = set(re.findall(r"^\| `([a-z0-9]+)` \((?:spot|futures)", text, re.MULTILINE))
    assert listed == set(exchanges.SUPPORTED)
    for name, spec in exchanges.SUPPORTED.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` ("))
        assert f"≤ {spec.client_id_max}," in row
        for code in spec.codes.duplicate | spec.codes.unknown:
            assert code in row, (name, code)
