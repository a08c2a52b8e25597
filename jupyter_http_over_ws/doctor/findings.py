"""What the doctor found: findings as data, the fixes they share, and printing them.

A check records :class:`Finding` objects in a :class:`Report`; :func:`render_text`
prints them for a person and :func:`render_json` for a script (``--json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

#: A finding's status: it works, it is broken (with a fix), worth knowing, or not checked.
Status = Literal["ok", "problem", "note", "skipped"]
OK: Status = "ok"
PROBLEM: Status = "problem"
NOTE: Status = "note"
SKIPPED: Status = "skipped"

#: The checks that must pass for the verdict "Everything works".
ESSENTIAL = frozenset({"reachable", "extension", "credentials", "request"})

#: How to install this package where the server runs (PyPI's 0.0.8 is the original).
INSTALL = (
    "install this package into the server's Python environment "
    "(`pip install -U jupyter-http-over-ws`, or `pip install .` in a checkout)"
)
#: The fix when the server refused something and only its log says why.
READ_LOG = "read the server's log for the reason"


@dataclass(frozen=True)
class Finding:
    """One result: which check, whether it passed, one sentence, and the fix."""

    check: str
    status: Status
    message: str
    fix: str | None = None


@dataclass
class Report:
    """Every finding of one run, in order."""

    url: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check found a problem and every essential check ran."""
        passed = {f.check for f in self.findings if f.status == OK}
        return passed >= ESSENTIAL and not any(f.status == PROBLEM for f in self.findings)

    def add(self, check: str, status: Status, message: str, fix: str | None = None) -> Finding:
        """Record one finding and return it."""
        finding = Finding(check, status, message, fix)
        self.findings.append(finding)
        return finding


LABELS = {OK: "ok", PROBLEM: "PROBLEM", NOTE: "note", SKIPPED: "skipped"}


def render_text(report: Report) -> str:
    """One line per finding, its fix on the next, and a verdict."""
    lines = [f"Checking {report.url}"]
    for finding in report.findings:
        lines.append(f"{LABELS[finding.status]:<8} {finding.message}")
        if finding.fix and finding.status != OK:
            lines.append(f"{'':<8}   fix: {finding.fix}")
    problems = sum(f.status == PROBLEM for f in report.findings)
    if report.ok:
        lines.append("Everything works.")
    else:
        lines.append(f"{problems} problem{'s' if problems != 1 else ''} found.")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    """The findings as JSON: ``{"url", "ok", "findings": [{check, status, message, fix}]}``."""
    data = {"url": report.url, "ok": report.ok, "findings": [asdict(f) for f in report.findings]}
    return json.dumps(data, indent=2)
