"""Results: one row per scenario or Schemathesis suite, printed as a table and as JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Result:
    """The outcome of one check of the kit."""

    suite: str  # "scenarios" or "schemathesis"
    name: str
    status: Status
    detail: str = ""
    seconds: float = 0.0


def failed(results: list[Result]) -> bool:
    return any(result.status == "failed" for result in results)


def print_table(results: list[Result], out: TextIO) -> None:
    """A fixed-width table: status, suite, name, then the reason of each failure or skip."""
    width = max((len(result.name) for result in results), default=10)
    print(f"{'STATUS':8} {'SUITE':13} {'CHECK':{width}}  DETAIL", file=out)
    for result in results:
        detail = result.detail.replace("\n", " ")
        print(
            f"{result.status.upper():8} {result.suite:13} {result.name:{width}}  {detail}", file=out
        )
    counts = Counter(result.status for result in results)
    print(
        f"\n{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped",
        file=out,
    )


def write_junit(results: list[Result], path: Path) -> None:
    """JUnit XML: one ``testsuite`` per suite, one ``testcase`` per result."""
    root = ET.Element("testsuites", name="recoup-api conformance")
    for suite in dict.fromkeys(result.suite for result in results):
        members = [result for result in results if result.suite == suite]
        element = ET.SubElement(
            root,
            "testsuite",
            name=suite,
            tests=str(len(members)),
            failures=str(sum(r.status == "failed" for r in members)),
            skipped=str(sum(r.status == "skipped" for r in members)),
            time=f"{sum(r.seconds for r in members):.3f}",
        )
        for result in members:
            case = ET.SubElement(
                element, "testcase", classname=suite, name=result.name, time=f"{result.seconds:.3f}"
            )
            if result.status == "failed":
                ET.SubElement(case, "failure", message=result.detail[:1000]).text = result.detail
            elif result.status == "skipped":
                ET.SubElement(case, "skipped", message=result.detail)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
