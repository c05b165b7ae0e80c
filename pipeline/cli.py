"""The ``sanling`` command line (README.md). Each command is a thin edge: parse arguments, load
the configuration once, call the job in :mod:`pipeline.jobs` (or the simulator / ingestion), print.

Errors the user can act on (:class:`pipeline.errors.SanlingError`) are printed as one line and exit
non-zero; nothing is shown as a traceback."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="sanling",
    help="三零 risk early-warning: simulate, validate, backtest, train, promote, score, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
token_app = typer.Typer(help="API tokens (stored hashed).", no_args_is_help=True)
app.add_typer(token_app, name="token")
followups_app = typer.Typer(help="双排查 follow-up records.", no_args_is_help=True)
app.add_typer(followups_app, name="followups")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="YAML configuration (docs/configuration.md).")
]
DataDir = Annotated[Path, typer.Argument(help="A data directory with units and events (csv/xlsx/parquet).")]
DaskOpt = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Run on Dask: 'local' (a LocalCluster sized to this machine) or a scheduler address "
        "tcp://HOST:8786; default SANLING_DASK, else this process (docs/operations.md).",
    ),
]


class Preset(StrEnum):
    county = "county"
    province = "province"
    national = "national"


class Role(StrEnum):
    analyst = "analyst"
    service = "service"
    township = "township"


@app.command()
def simulate(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write units, events and truth.parquet to.")
    ],
    preset: Annotated[
        Preset,
        typer.Option(
            help="county ≈ 500 units; province ≈ 50,000 units; national ≈ 1,000,000 units, "
            "written region by region and split by city (docs/simulator.md)."
        ),
    ] = Preset.county,
    units: Annotated[int | None, typer.Option(help="Override the preset's number of units.")] = None,
    months: Annotated[int, typer.Option(help="Months to simulate, from 2018-01.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet for units and events.")] = "parquet",
    reporting: Annotated[
        bool,
        typer.Option(
            help="Record events late, escalations later, corrections and mediators history "
            "(docs/simulator.md); --no-reporting records everything at once (the old world)."
        ),
    ] = True,
    reporting_effort: Annotated[
        float,
        typer.Option(
            "--reporting-effort",
            min=0.0,
            help="Extra recorded minor hazards a month per SD of grid workers above the type's mean "
            "(raises recorded events, not true risk; docs/simulator.md). Default 0: off.",
        ),
    ] = 0.0,
) -> None:
    """Write a synthetic Shanxi world whose true risk is known."""
    from sanling.core.errors import ConfigError
    from sanling.pipeline.simulate import simulate_national, simulate_world

    if preset == Preset.national:
        if fmt != "parquet" or reporting_effort:
            raise ConfigError("the national preset is written as Parquet, without --reporting-effort")
        typer.echo(simulate_national(out, n_units=units, months=months, seed=seed, reporting=reporting))
        return
    summary = simulate_world(
        out,
        preset=preset.value,
        n_units=units,
        months=months,
        seed=seed,
        fmt=fmt,
        reporting=reporting,
        reporting_effort=reporting_effort,
    )
    typer.echo(summary)


@app.command()
def validate(data_dir: DataDir, config: ConfigOpt = None) -> None:
    """Check a data directory against the contract; print a summary; exit 0 if usable."""
    from sanling.pipeline.ingest import load_dataset
    from sanling.pipeline.ingest.followups import check_followups

    ds = load_dataset(data_dir, categories=_config(config).categories)
    typer.echo(ds.report.summary())
    _, line = check_followups(ds.source, ds.units, ds.workdir)  # the optional followups table
    if line:
        typer.echo(line)


@app.command()
def backtest(
    data_dir: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Directory for metrics.json and the report.")],
    config: ConfigOpt = None,
    dask: DaskOpt = None,
) -> None:
    """Rolling-origin evaluation against the baselines (and the oracle when truth.parquet exists)."""
    from sanling.pipeline import jobs

    jobs.backtest(data_dir, out, _config(config), _settings(dask))


@app.command()
def train(data_dir: DataDir, config: ConfigOpt = None, dask: DaskOpt = None) -> None:
    """Train on all labelled history, log to MLflow and register a model version."""
    from sanling.pipeline import jobs

    jobs.train(data_dir, _config(config), _settings(dask))


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to promote.")],
    alias: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    force: Annotated[bool, typer.Option(help="Promote even if its backtest RPS is worse.")] = False,
) -> None:
    """Move a registry alias to a model version (with a gate on backtest RPS)."""
    from sanling.pipeline import jobs

    jobs.promote(version, alias=alias, force=force)


@app.command()
def score(
    data_dir: DataDir,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM; default the latest month.")] = None,
    dask: DaskOpt = None,
) -> None:
    """Score every unit with the champion; store scores and explanations."""
    from sanling.pipeline import jobs

    jobs.score(data_dir, as_of=as_of, settings=_settings(dask))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data for POST /v1/score.")] = None,
) -> None:
    """Start the API and the township web pages."""
    from sanling.pipeline import jobs

    jobs.serve(host=host, port=port, data_dir=data_dir)


@app.command()
def drift(data_dir: DataDir, out: Annotated[Path | None, typer.Option("--out")] = None) -> None:
    """The latest month against the training window: feature and volume drift, warnings."""
    from sanling.pipeline import jobs

    jobs.drift(data_dir, out=out)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo world and outputs go.")] = Path("demo"),
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server at the end.")
    ] = True,
    port: Annotated[int, typer.Option(help="Port for the server.")] = 8000,
) -> None:
    """simulate → validate → backtest → train → promote → score → serve, on the county preset."""
    from sanling.pipeline import jobs

    jobs.demo(workdir, serve_after=serve_after, port=port)


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="analyst, service or township.")],
    township: Annotated[str | None, typer.Option(help="The township a township token may read.")] = None,
    county: Annotated[
        str | None, typer.Option(help="The township's county (needed when the name exists in several).")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", help="Valid for this many days (default: until revoked).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Who holds the token (for the audit log).")] = None,
) -> None:
    """Print a new API token; only its hash is stored."""
    from sanling.pipeline import admin

    typer.echo(
        admin.token_create(role.value, township=township, county=county, name=name, expires_days=expires_days)
    )


@token_app.command("list")
def token_list() -> None:
    """List the tokens: id, role, scope, holder, created, last used, expires, status (never the token)."""
    from sanling.pipeline import admin

    typer.echo(admin.format_tokens(admin.token_list()))


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `sanling token list`).")],
) -> None:
    """Revoke a token at once; page sessions signed in with it end too."""
    from sanling.pipeline import admin

    admin.token_revoke(token_id)
    typer.echo(f"revoked token {token_id}")


@app.command()
def backup(out: Annotated[Path, typer.Argument(help="The backup file to write (mode 0600).")]) -> None:
    """Back up the store (scores, follow-ups, tokens, audit) while the server runs; see
    docs/operations.md for restoring."""
    from sanling.pipeline import admin

    typer.echo(f"backup written to {admin.backup(out)}")


@followups_app.command("export")
def followups_export(
    out: Annotated[Path, typer.Argument(help="A data directory to write followups.csv into.")],
) -> None:
    """Write the store's follow-up records as the data folder's optional followups table
    (unit_id, visited_at, status, measures), so `sanling backtest` can read them (summary.acted_on)."""
    from sanling.pipeline import jobs

    typer.echo(jobs.followups_export(out))


def _settings(dask: str | None):
    """The deployment settings; ``--dask`` overrides ``SANLING_DASK``."""
    from sanling.core.config import Settings

    settings = Settings()
    if dask is None:
        return settings
    from sanling.pipeline.distributed.cluster import check_address

    return settings.model_copy(update={"dask": check_address(dask)})


def _config(path: Path | None):
    from sanling.core.config import load_config

    return load_config(path)


def main() -> None:
    from sanling.core.errors import SanlingError

    try:
        app()
    except SanlingError as e:
        typer.echo(f"sanling: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("sanling: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
