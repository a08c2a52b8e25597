"""The Zero to JupyterHub guide's Helm values: real keys of the chart, the guide's hub config.

Our suite does not run Kubernetes. What it can check without a cluster:

- every key path of the YAML in ``docs/operators/zero-to-jupyterhub.md`` (the block
  after ``<!-- tested: z2jh-values -->``) is a key the chart's values schema accepts,
  with a value of the type it requires. The schema is z2jh's
  ``jupyterhub/values.schema.yaml`` as of chart 4.4.0 (tag ``4.4.0``, commit 5c5f5df7,
  2026-06-10; its hub runs JupyterHub 5.5.0); the part of it these values touch is
  written down below, as read from that file (the whole snippet, merged with the
  chart's default values, also validated against the full schema of 4.4.0 and of the
  chart's main branch at 48ea50e3 when this test was written);
- the values give the hub the same configuration as the ``jupyterhub_config.py``
  snippets of ``docs/operators/jupyterhub.md``, which ``tests/test_hub_guide.py`` runs in
  a real hub: the chart's ``jupyterhub_config.py`` loads ``hub.config.<Class>.<trait>``
  into ``c.<Class>.<trait>``, ``singleuser.extraEnv`` into ``c.KubeSpawner.environment``,
  and ``hub.services`` / ``hub.loadRoles`` (dictionaries keyed by name) into
  ``c.JupyterHub.services`` / ``load_roles`` (lists, ``name`` from the key, the services'
  ``api_token`` from the chart's Secret).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from traitlets.config import Config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operators"
Z2JH_GUIDE = DOCS / "zero-to-jupyterhub.md"
HUB_GUIDE = DOCS / "jupyterhub.md"


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _array(value: Any) -> bool:
    return isinstance(value, list)


def _string_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda value: value in choices


#: Key paths of z2jh 4.4.0's values.schema.yaml that the guide's values use, with the
#: type each requires. Every object on the way (singleuser, singleuser.image, hub,
#: proxy, proxy.service, ingress) has ``additionalProperties: false`` there, so a key
#: that is not listed is refused by ``helm install``.
SCHEMA_LEAVES: dict[str, Callable[[Any], bool]] = {
    "singleuser.image.name": _string,  # singleuser.image requires name and tag
    "singleuser.image.tag": _string,
    "proxy.service.type": _one_of("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
    "ingress.enabled": _boolean,
    "ingress.ingressClassName": _string_or_null,
    "ingress.hosts": _array,
    "ingress.tls": _array,
}

#: Maps whose keys the schema leaves open, and what it requires of their entries:
#: ``singleuser.extraEnv`` (type object or array, additionalProperties: true),
#: ``hub.services`` and ``hub.loadRoles`` (additionalProperties: true),
#: ``hub.config`` (``JupyterHub`` and patternProperties ``^[A-Z].*$``: objects,
#: additionalProperties: true; additionalProperties: false for anything else; the chart
#: refuses a section that is not a class name), ``ingress.annotations``
#: (patternProperties ``.*``: type string).
OPEN_MAPS: dict[str, Callable[[str, Any], bool]] = {
    "singleuser.extraEnv": lambda key, value: True,
    "hub.services": lambda key, value: isinstance(value, dict),
    "hub.loadRoles": lambda key, value: isinstance(value, dict),
    "hub.config": lambda key, value: bool(re.match(r"^[A-Z]", key)) and isinstance(value, dict),
    "ingress.annotations": lambda key, value: isinstance(value, str),
}

#: Keys that are not in the schema (which the guide says), so must not appear.
NOT_IN_SCHEMA = ("singleuser.args", "singleuser.extraArgs", "hub.extraArgs")


def z2jh_values() -> dict[str, Any]:
    text = Z2JH_GUIDE.read_text()
    blocks = re.findall(r"<!-- tested: z2jh-values -->\n```yaml\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) == 1
    return dict(yaml.safe_load(blocks[0]))


def leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """``(dotted path, value)`` for every value that is not a mapping, or an open map."""
    if path in OPEN_MAPS or not isinstance(node, dict):
        return [(path, node)]
    found = []
    for key, value in node.items():
        found.extend(leaves(value, f"{path}.{key}" if path else str(key)))
    return found


def test_every_key_of_the_guides_values_is_in_the_charts_schema():
    values = z2jh_values()
    found = leaves(values)
    assert found
    for path, value in found:
        if path in OPEN_MAPS:
            assert isinstance(value, dict), path
            for key, entry in value.items():
                assert OPEN_MAPS[path](key, entry), f"{path}.{key}: {entry!r}"
        else:
            assert path in SCHEMA_LEAVES, f"{path} is not a key of the chart's values"
            assert SCHEMA_LEAVES[path](value), f"{path}: {value!r} has the wrong type"
        assert not path.startswith(NOT_IN_SCHEMA), path
    # The chart requires both parts of an image.
    assert set(values["singleuser"]["image"]) >= {"name", "tag"}


def test_the_checker_refuses_keys_the_chart_does_not_have():
    for path in NOT_IN_SCHEMA:
        assert path not in SCHEMA_LEAVES
        assert not any(path.startswith(open_map) for open_map in OPEN_MAPS)
    wrong = {"singleuser": {"args": ["--ServerApp.allow_origin=x"]}}
    assert [p for p, _ in leaves(wrong) if p not in SCHEMA_LEAVES] == ["singleuser.args"]


def hub_guide_config(monkeypatch) -> Config:
    """The JupyterHub guide's tested snippets, run as a hub runs jupyterhub_config.py."""
    text = HUB_GUIDE.read_text()
    blocks = re.findall(
        r"^([ \t]*)<!-- tested: hub-config -->\n[ \t]*```python\n(.*?)^[ \t]*```",
        text,
        re.S | re.M,
    )
    assert blocks
    monkeypatch.setenv("FRONTEND_BACKEND_TOKEN", "backend-secret")
    monkeypatch.setenv("FRONTEND_OAUTH_SECRET", "oauth-secret")
    c = Config()
    for indent, code in blocks:
        code = "\n".join(line.removeprefix(indent) for line in code.splitlines())
        exec(compile(code, "jupyterhub_config.py", "exec"), {"c": c, "os": os})
    return c


#: The JupyterHub guide's culler service, and the timeout of the chart's own culler
#: (``cull.timeout`` in z2jh 4.4.0's values.yaml, with ``cull.enabled: true``).
CULLER = "idle-culler"
CHART_CULL_TIMEOUT = 3600


def resolved(value: Any, initial: Any) -> Any:
    """A config value as the trait gets it (``append``/``update`` applied to ``initial``)."""
    return value.get_value(initial) if hasattr(value, "get_value") else value


def test_the_values_give_the_hub_the_jupyterhub_guides_configuration(monkeypatch):
    values = z2jh_values()
    c = hub_guide_config(monkeypatch)
    hub = values["hub"]
    # The page origins: hub.config.KubeSpawner.args is the guide's c.Spawner.args.
    assert hub["config"]["KubeSpawner"]["args"] == c.Spawner.args
    # Token lifetimes: hub.config.JupyterHub is c.JupyterHub.
    for trait, value in hub["config"]["JupyterHub"].items():
        assert c.JupyterHub[trait] == value, trait
    # JUPYTERHUB_ALLOW_TOKEN_IN_URL: singleuser.extraEnv is c.Spawner.environment.
    assert values["singleuser"]["extraEnv"] == resolved(c.Spawner.environment, {})
    # The services and roles, as the chart turns its dictionaries into lists.
    # The guide's idle-culler service and role are the chart's own culler (``cull``,
    # which the chart runs as a service with its own role): they are not in hub.services.
    services = resolved(c.JupyterHub.services, [])
    guide_services = {s["name"]: {k: v for k, v in s.items() if k != "api_token"} for s in services}
    culler = guide_services.pop(CULLER)
    assert f"--timeout={CHART_CULL_TIMEOUT}" in culler["command"]
    assert "cull" not in values  # the chart's defaults: cull.enabled, cull.timeout 3600
    chart_services = {name: {"name": name, **s} for name, s in hub["services"].items()}
    assert CULLER not in chart_services
    assert chart_services == guide_services
    roles = {r["name"]: r for r in resolved(c.JupyterHub.load_roles, [])}
    assert roles.pop(CULLER)["services"] == [CULLER]
    assert {name: {"name": name, **r} for name, r in hub["loadRoles"].items()} == roles
