"""``recoup-api conformance`` / ``python -m conformance``: test an implementation of the API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

from conformance.client import ApiClient, Journal
from conformance.contract import load_contract
from conformance.report import Result, failed, print_table, write_junit
from conformance.scenarios import SCENARIOS, Context, run_scenario


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recoup-api conformance",
        description="Test an implementation of the Recoup Sessions & Chat API against the spec.",
    )
    parser.add_argument("--base-url", help="the target, e.g. http://127.0.0.1:8000 (required)")
    parser.add_argument("--api-key", help="an API key of the primary account (required)")
    parser.add_argument(
        "--other-api-key", help="an API key of a second account (owner-only access scenarios)"
    )
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report to this file")
    parser.add_argument(
        "--max-examples", type=int, default=20, help="Schemathesis cases per operation (20)"
    )
    parser.add_argument(
        "--scenarios", help="comma-separated scenario names to run (default: all); see --list"
    )
    parser.add_argument("--no-fuzz", action="store_true", help="skip the Schemathesis run")
    parser.add_argument(
        "--spec",
        choices=("auto", "target", "bundled"),
        default="auto",
        help="the contract: the target's /api/openapi.json if served (auto), or the bundled one",
    )
    parser.add_argument(
        "--schemathesis-config", type=Path, help="a schemathesis.toml to use instead of the kit's"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (60)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the kit; 0 when nothing failed, 1 on any failure, 2 when it could not run."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.__name__:42} {(scenario.__doc__ or '').strip()}")
        return 0
    if not args.base_url or not args.api_key:
        parser.error("--base-url and --api-key are required")
    by_name = {scenario.__name__: scenario for scenario in SCENARIOS}
    wanted = [name.strip() for name in (args.scenarios or "").split(",") if name.strip()]
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        print(f"error: unknown scenario(s): {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    selected = [by_name[name] for name in wanted] if wanted else list(SCENARIOS)
    base_url = args.base_url.rstrip("/")
    with httpx.Client(base_url=base_url, timeout=args.timeout) as http:
        try:
            contract = load_contract(http, base_url, args.spec)
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"error: cannot load the contract from {base_url}: {exc}", file=sys.stderr)
            return 2
        print(f"Target: {base_url}\nContract: {contract.source}\n", flush=True)
        journal = Journal()
        ctx = Context(
            contract=contract,
            journal=journal,
            client=ApiClient(http, contract, journal, args.api_key),
            anonymous=ApiClient(http, contract, journal, None),
            other=ApiClient(http, contract, journal, args.other_api_key)
            if args.other_api_key
            else None,
        )
        try:
            results: list[Result] = [run_scenario(ctx, scenario) for scenario in selected]
        except httpx.TransportError as exc:
            print(f"error: the target does not answer: {exc}", file=sys.stderr)
            return 2
    if not args.no_fuzz:
        from conformance.fuzz import run_schemathesis  # imported late: it is slow to import

        results += run_schemathesis(
            contract.document,
            base_url=base_url,
            api_key=args.api_key,
            max_examples=args.max_examples,
            config_path=args.schemathesis_config,
        )
    print_table(results, sys.stdout)
    if args.junit is not None:
        write_junit(results, args.junit)
    return 1 if failed(results) else 0
