"""``pm.<scope>.set(name, value, "secret")`` keeps the secret type, as in Postman."""

from __future__ import annotations

from runtime.loading import VariableFile, load_collection
from runtime.masking import MASK, masked_script_lines, with_masked_script_lines
from runtime.runner import run_collection

SCRIPT = [
    "pm.environment.set('s', 'v1', 'secret');",
    "pm.environment.set('t', 'v2');",
    "pm.environment.set('n', 5, 'number');",
    "pm.globals.set('g', 'v4', {type: 'secret'});",
]


def test_script_set_secrets_stay_secret_and_other_types_stay_as_set() -> None:
    collection = load_collection(
        {
            "info": {"name": "types"},
            "item": [
                {
                    "name": "a",
                    "request": {"url": "http://127.0.0.1:1/"},
                    "event": [{"listen": "prerequest", "script": {"exec": SCRIPT}}],
                }
            ],
        }
    )
    environment = VariableFile("e", "e", [{"key": "t", "value": "x", "type": "secret"}])
    run = run_collection(collection, environment=environment)
    types = {entry["key"]: entry["type"] for entry in [*run.environment, *run.globals]}
    assert types == {"s": "secret", "t": "secret", "n": "number", "g": "secret"}
    assert all("secret" not in entry for entry in run.environment)  # no sandbox flag left


def test_masked_script_lines_travel_by_position() -> None:
    document = {
        "event": [{"listen": "test", "script": {"exec": "x = 'k3y'"}}],
        "item": [{"item": [{"event": [{"script": {"exec": ["ok", 7, "set('k3y')"]}}]}]}],
    }
    lines = masked_script_lines(document, ["k3y"])
    assert lines == [[[], 0, 0, f"x = '{MASK}'"], [[0, 0], 0, 2, f"set('{MASK}')"]]
    masked = with_masked_script_lines(document, lines)
    assert masked["item"][0]["item"][0]["event"][0]["script"]["exec"] == ["ok", 7, f"set('{MASK}')"]
    assert "k3y" not in repr(masked) and "k3y" in repr(document)
