"""Contract-first scaffolding: a handler stub for every operation that has none yet."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from server.spec import Document, operations

HANDLERS_DIR = Path(__file__).resolve().parent.parent / "handlers"

_MODULE_HEADER = '''"""Handlers generated from the specification; fill them in."""

from __future__ import annotations

from typing import Any
'''


def _pythonic(name: str) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return re.sub(r"\W", "_", snake)


def handler_arguments(path_item: Document, operation: Document, document: Document) -> list[str]:
    """The keyword arguments Connexion passes to the operation's handler, in order."""
    parameters = [*path_item.get("parameters", []), *operation.get("parameters", [])]
    names = []
    for parameter in parameters:
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if parameter.get("in") in ("path", "query"):
            names.append(_pythonic(parameter["name"]))
    secured = operation.get("security", document.get("security")) not in (None, [])
    return [*names, *(["user: str"] if secured else [])]


def missing_handlers(document: Document, package: str = "handlers") -> list[tuple[str, str]]:
    """``(module, function)`` for every operationId that does not resolve to a function."""
    missing = []
    for _method, _path, operation in operations(document):
        module_name, _, function = operation["operationId"].rpartition(".")
        try:
            module: Any = importlib.import_module(f"{package}.{module_name}")
        except ModuleNotFoundError:
            missing.append((module_name, function))
            continue
        if not callable(getattr(module, function, None)):
            missing.append((module_name, function))
    return missing


def stub_source(function: str, arguments: list[str], summary: str, has_body: bool) -> str:
    params = [arg if ":" in arg else f"{arg}: Any" for arg in arguments]
    if has_body:
        params.append("body: dict[str, Any] | None = None")
    return (
        f"\n\nasync def {function}({', '.join(params)}) -> Any:\n"
        f'    """{summary or function}"""\n'
        f"    raise NotImplementedError({function!r})\n"
    )


def generate_stubs(document: Document, handlers_dir: Path = HANDLERS_DIR) -> list[str]:
    """Append a stub to ``handlers/<module>.py`` for each missing handler; returns their names."""
    package = handlers_dir.name
    wanted = set(missing_handlers(document, package))
    written = []
    for _method, path, operation in operations(document):
        module_name, _, function = operation["operationId"].rpartition(".")
        if (module_name, function) not in wanted:
            continue
        target = handlers_dir / f"{module_name.replace('.', '/')}.py"
        if not target.exists():
            target.write_text(_MODULE_HEADER, encoding="utf-8")
        arguments = handler_arguments(document["paths"][path], operation, document)
        source = stub_source(
            function, arguments, operation.get("summary", ""), "requestBody" in operation
        )
        with target.open("a", encoding="utf-8") as fh:
            fh.write(source)
        written.append(f"{package}.{module_name}.{function}")
    return written
