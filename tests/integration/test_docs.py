"""The documentation against the code: help texts as rendered, and the commands and keys README.md and docs/ name."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from repeg.cli.app import build_app

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))


def _commands() -> dict[str, Any]:
    """Every `repeg` command by name (typer's click commands)."""
    group = typer.main.get_command(build_app())
    assert isinstance(group, TyperGroup)
    return dict(group.commands)


def test_every_bracketed_word_of_a_help_text_reaches_the_rendered_help() -> None:
    """Help is rendered as rich markup, which silently drops an unescaped `[word]` (`resume --config`'s "TOML
    whose [execution] replaces ..." read "TOML whose  replaces ..."): every such word must show as written."""
    app = build_app()
    missing = []
    for name, command in _commands().items():
        rendered = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "300"}).stdout
        texts = [command.help or "", *(getattr(param, "help", None) or "" for param in command.params)]
        for text in texts:
            words = re.findall(r"\[[^\]\s]+\]", text.replace("\\[", "["))
            missing += [f"{name}: {word}" for word in words if word not in rendered]
    assert missing == []


def _doc_command_lines() -> list[tuple[str, str]]:
    """(document, line) for every `repeg ...` command line in a fenced block or an inline code span."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        lines = [line.split("#")[0] for block in blocks for line in block.splitlines()] + spans
        found += [(doc.name, line.strip()) for line in lines if re.match(r"\s*repeg\s+[a-z]", line)]
    return found


def test_every_command_and_option_the_docs_show_exists() -> None:
    options = {
        name: {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for name, command in _commands().items()
    }
    lines = _doc_command_lines()
    assert len(lines) > 20  # the parser still finds the docs' commands
    unknown = []
    for doc, line in lines:
        name, _, rest = line.removeprefix("repeg").strip().partition(" ")
        if name not in options:
            unknown.append(f"{doc}: {line}")
            continue
        unknown += [
            f"{doc}: {line}"
            for opt in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest)
            if opt not in options[name]
        ]
    assert unknown == []


def _readme_table(heading: str) -> list[tuple[str, list[str]]]:
    """The first table after `heading` in README.md, below its header: (key, cells) for each key of a row's first
    cell (backticks dropped, `a`, `b` split)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    rows = []
    for line in lines[start + 2 : end]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.extend((key.strip().strip("`"), cells) for key in cells[0].split(","))
    return rows


def _readme_rows(heading: str) -> dict[str, str]:
    """The first table after `heading` in README.md: each key of its first cell -> the row's second cell."""
    return {key: cells[1].strip("`") for key, cells in _readme_table(heading)}


def test_readme_simulator_table_lists_exactly_the_simulator_keys_with_their_defaults() -> None:
    from repeg.brokers.simulator.account import SimAccount
    from repeg.brokers.simulator.latency import LatencyModel
    from repeg.simulation import MarketSettings, SymbolSettings

    documented = _readme_rows("### `[simulator]`")
    keys = {
        "seed",
        *SimAccount.model_fields,
        *(f"latency.{key}" for key in LatencyModel.model_fields),
        *(f"market.{key}" for key in MarketSettings.model_fields if key != "symbols"),
        "market.symbols.SYMBOL",
    }
    assert set(documented) == keys
    assert documented["seed"] == "0"
    assert documented["cash"] == str(SimAccount().cash)
    assert {documented[f"latency.{key}"] for key in LatencyModel.model_fields} == {"0"}
    market = MarketSettings()
    assert documented["market.start"] == market.start.strftime("%Y-%m-%dT%H:%M:%SZ")
    for key in ("duration_seconds", "quote_interval_seconds", "invalid_rate"):
        assert float(documented[f"market.{key}"]) == getattr(market, key), key
    (symbol_row,) = (
        line for line in (REPO / "README.md").read_text().splitlines() if "market.symbols." in line
    )
    assert set(re.findall(r"(\w+) = ", symbol_row)) == set(SymbolSettings.model_fields)


def _resolves(dotted: str) -> bool:
    """Whether `repeg.a.b.c` names a module, or an attribute of one."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def test_every_path_and_repeg_name_the_docs_give_exists() -> None:
    """The module map and the docs name files (`src/repeg/market/source.py`, `brokers/base.py`, `text.py` in a
    row of `report/`) and dotted names (`repeg.config.classic_ladder`): each must still be there."""
    sources = [
        path.relative_to(REPO / "src" / "repeg").as_posix() for path in (REPO / "src" / "repeg").rglob("*.py")
    ]
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for token in re.findall(r"`([\w./-]+(?:\.py|\.sh|/))`", text):
            bases = (REPO, REPO / "src", REPO / "src" / "repeg")
            known = any((base / token).exists() for base in bases) or any(
                source.endswith("/" + token) for source in sources
            )
            missing += [] if known else [f"{doc.name}: {token}"]
        names = set(re.findall(r"\brepeg(?:\.[A-Za-z_]\w*)+", text)) - {"repeg.db"}
        missing += [f"{doc.name}: {name}" for name in sorted(names) if not _resolves(name)]
    assert missing == []


def _map_rows_of(package: str) -> list[str]:
    """The rows of docs/ARCHITECTURE.md's map whose `where` (last cell) is `src/repeg/<package>/` itself, optionally
    followed by its modules (`src/repeg/report/` (`result.py`, ...)): not a subpackage's (`src/repeg/brokers/alpaca/`
    is no row of `brokers`), whatever the padding of the cell and whether the row ends with `|`."""
    where = f"`src/repeg/{package}/`"
    rows = []
    for line in (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines():
        cells = (
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            if line.lstrip().startswith("|")
            else []
        )
        rows += [line] if cells and (cells[-1] == where or cells[-1].startswith(f"{where} ")) else []
    return rows


@pytest.mark.parametrize(
    "package", ["cli", "engine", "brokers/simulator", "brokers/alpaca", "brokers/remote", "journal", "market"]
)
def test_the_module_map_names_every_module_of_the_package_it_lists(package: str) -> None:
    """docs/ARCHITECTURE.md lists these packages' modules one by one, in the rows whose `where` is the package: a
    module added there (`cli/interrupts.py`, 2ecea50; `engine/run_end.py`, `brokers/simulator/admission.py`,
    `journal/postgres_session.py`, `market/price_units.py`) must be named too, or the map says where everything is
    while a newcomer looking for it ("where is the run's end handled?") cannot find it."""
    rows = _map_rows_of(package)
    assert rows  # the map still has the package's row
    named = " ".join(rows)
    modules = {path.name for path in (REPO / "src" / "repeg" / package).glob("*.py")} - {"__init__.py"}
    assert sorted(name for name in modules if f"`{name}`" not in named) == []


def test_the_module_map_names_every_module_of_repeg() -> None:
    """Every module under `src/repeg` is named in docs/ARCHITECTURE.md: by its path (`src/repeg/domain/ticks.py`,
    `brokers/base.py`), or by its file name in a map row of its package (`src/repeg/lab/` with `tca.py`), so that
    no module, in a package the test above does not list either (`domain/account.py`, `policy/`, `lab/`), is
    missing from the page that says where everything is."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    root = REPO / "src" / "repeg"
    missing = []
    for path in sorted(root.rglob("*.py")):
        relative, package = path.relative_to(root).as_posix(), path.parent.relative_to(root).as_posix()
        if path.name == "__init__.py" or f"src/repeg/{relative}" in text or f"`{relative}`" in text:
            continue
        in_its_row = package != "." and any(f"`{path.name}`" in row for row in _map_rows_of(package))
        missing += [] if in_its_row else [relative]
    assert missing == []


def _toml_blocks(doc: str) -> list[dict[str, object]]:
    import tomllib

    text = (REPO / doc).read_text(encoding="utf-8")
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", text, re.DOTALL)]


def test_every_toml_example_of_the_docs_is_read_by_the_code_it_documents() -> None:
    """A renamed or re-bounded key makes its documented example fail here, not in a user's hands."""
    from repeg.brokers.alpaca.settings import AlpacaSettings
    from repeg.config import CLASSIC_LADDER, classic_ladder, config_from_mapping
    from repeg.lab.sweep_grid import grid_from_mapping

    (ladder,) = _toml_blocks("README.md")
    assert config_from_mapping(ladder["execution"]) == classic_ladder()  # type: ignore[arg-type]
    assert set(ladder["execution"]) == set(CLASSIC_LADDER)  # type: ignore[arg-type]
    credentials, settings = _toml_blocks("docs/ALPACA.md")
    assert set(credentials["alpaca"]) == {"key_id", "secret_key"}  # type: ignore[arg-type]
    AlpacaSettings.from_mapping(settings["alpaca"])  # type: ignore[arg-type]
    (grid,) = _toml_blocks("docs/LAB_REPORTS.md")
    assert grid_from_mapping(grid).policy  # one policy with its swept keys, read as a sweep reads them


def _repeg_imports(package: str) -> dict[str, set[str]]:
    """`repeg.*` modules each module of `src/repeg/<package>` imports (at any depth, TYPE_CHECKING included)."""
    import ast

    found = {}
    for path in sorted((REPO / "src" / "repeg" / package).glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[f"{package}/{path.name}"] = {name for name in names if name.split(".")[0] == "repeg"}
    return found


def test_imports_point_inward_as_the_architecture_page_says() -> None:
    """docs/ARCHITECTURE.md: `domain` imports nothing of repeg but itself and `errors.py`; nothing inner imports
    `cli`, `api` or an adapter."""
    domain = _repeg_imports("domain")
    assert domain  # the walk found the package
    outside = {
        module: sorted(name for name in names if not name.startswith(("repeg.domain", "repeg.errors")))
        for module, names in domain.items()
    }
    assert {module: names for module, names in outside.items() if names} == {}
    adapters = (
        "repeg.cli",
        "repeg.api",
        "repeg.brokers.simulator",
        "repeg.brokers.alpaca",
        "repeg.brokers.remote",
        "repeg.market.alpaca_feed",
        "repeg.market.alpaca_history",
    )
    inner = {**domain, **_repeg_imports("policy"), **_repeg_imports("planning"), **_repeg_imports("engine")}
    wrong = {module: sorted(n for n in names if n.startswith(adapters)) for module, names in inner.items()}
    assert {module: names for module, names in wrong.items() if names} == {}


def test_policy_planning_and_engine_import_only_what_the_architecture_page_says() -> None:
    """docs/ARCHITECTURE.md: `policy` and `planning` import `domain`, `config.py` and `errors.py`; `engine` imports
    those, `policy`, the ports (with `brokers/pacing.py`), `report/result.py` and the package's `__version__`. The
    page said `errors.py` of neither and nothing of the package root, while the code imports both (and, since
    `engine/bounded_broker.py` reads the client's pacing, `brokers/pacing.py`): each list must stay the code's."""
    core = ("repeg.domain", "repeg.config", "repeg.errors")
    allowed = {
        "policy": (*core, "repeg.policy"),
        "planning": (*core, "repeg.planning"),
        "engine": (
            *core,
            "repeg.policy",
            "repeg.engine",
            "repeg.brokers.base",
            "repeg.brokers.pacing",
            "repeg.market.base",
            "repeg.report.result",
        ),
    }
    wrong = {}
    for package, prefixes in allowed.items():
        for module, names in _repeg_imports(package).items():
            # `import repeg` (the engine's `repeg.__version__`): the package root, which the page grants engine alone
            root = {"repeg"} if package == "engine" else set()
            extra = sorted(name for name in names - root if not name.startswith(prefixes))
            wrong.update({module: extra} if extra else {})
    assert wrong == {}


def test_readme_usage_table_documents_every_option_of_run() -> None:
    """The Usage table is where a user looks up `repeg run`'s options: `--sim-url` (needed by `--broker
    sim-remote`) was missing from it."""
    documented = set()
    for key in _readme_rows("## Usage"):
        documented.update(re.findall(r"--[a-z][a-z-]*", key))
    run = _commands()["run"]
    options = {opt for param in run.params for opt in param.opts if opt.startswith("--")}
    assert sorted(options - documented) == []


def _readme_meanings(heading: str) -> dict[str, str]:
    """The first table after `heading` in README.md: each key of its first cell -> the row's last cell."""
    return {key: cells[-1] for key, cells in _readme_table(heading)}


def _refused(key: str, value: object, **others: object) -> bool:
    from repeg.config import config_from_mapping
    from repeg.errors import ConfigError

    try:
        config_from_mapping({**others, key: value})
    except ConfigError as exc:
        return exc.key == key
    return False


#: `[execution]` keys that are not numbers (their rules are in their meaning, not a bound).
_UNBOUNDED = {"repeg_steps", "on_no_quote", "escalation"}
#: Values that satisfy every check across keys while one key is probed at its documented bound.
_NEUTRAL: dict[str, dict[str, object]] = {"max_total_wait": {"fill_wait_seconds": 10}}


def test_readme_configuration_bounds_are_the_ones_the_code_enforces() -> None:
    """Each `[execution]` key's meaning opens with its bound ("over 0", "0 or more", "in [0, 1]", "at most
    1,000,000", "under 10000", "at least `fill_wait_seconds`"): probe the code at each bound, so that a bound changed
    in `repeg.config` and not in the README (or the reverse) fails here. A numeric key must state one."""
    meanings = _readme_meanings("## Configuration")
    wrong, unstated = [], []
    for key, meaning in meanings.items():
        others = _NEUTRAL.get(key, {})
        probes: list[tuple[object, bool]] = []  # (value, refused?)
        if meaning.startswith("over 0"):
            probes += [(0, True), (-1, True)]
        if meaning.startswith("0 or more"):
            probes += [(0, False), (-1, True)]
        if meaning.startswith("in [0, 1]"):
            probes += [(0, False), (1, False), ("-0.01", True), ("1.01", True)]
        if match := re.search(r"at most ([\d,]+)", meaning):
            bound = match.group(1).replace(",", "")
            probes += [(bound, False), (f"{bound}.01", True)]
        if match := re.search(r"\(under (\d+)", meaning):
            bound = match.group(1)
            probes += [(int(bound) - 1, False), (bound, True)]
        if meaning.startswith("at least `fill_wait_seconds`"):
            probes += [(10, False), (9.5, True)]
        if key not in _UNBOUNDED and not probes:
            unstated.append(key)
        wrong += [
            f"{key} = {value!r}" for value, refused in probes if _refused(key, value, **others) != refused
        ]
    assert unstated == []
    assert wrong == []


def test_the_docs_state_the_longest_time_as_the_code_bounds_it() -> None:
    """`config.MAX_SECONDS`, the bound of every time repeg reads, is 366 days: README and docs/ALPACA.md said "one
    year" (which a reader takes for 365 days, and which 31,622,400 s is only in a leap year). Both must state the
    bound as the constant has it, and neither say "one year"."""
    from repeg.config import MAX_SECONDS

    stated = f"at most {MAX_SECONDS / 86400:.0f} days ({MAX_SECONDS:,.0f} s)"
    texts = {
        doc: " ".join((REPO / doc).read_text(encoding="utf-8").split())
        for doc in ("README.md", "docs/ALPACA.md")
    }
    assert sorted(doc for doc, text in texts.items() if stated not in text or "one year" in text) == []


def test_readme_configuration_defaults_are_the_code_defaults() -> None:
    """Each `[execution]` key's `default` cell is what `ExecutionConfig` takes when the key is left out: `none` for
    an unset limit, a list as its TOML, a word as its quoted TOML string, a number as its value. The bounds test
    above probes each key's bounds, not its default: a default changed in `repeg.config` and not in the README (or
    the reverse) used to pass. The table must also list exactly the model's keys."""
    import tomllib

    from repeg.config import ExecutionConfig

    documented = _readme_rows("## Configuration")
    fields = ExecutionConfig.model_fields
    assert sorted(documented) == sorted(fields)
    wrong = []
    for key, cell in documented.items():
        default = fields[key].default
        stated = None if cell == "none" else tomllib.loads(f"v = {cell}")["v"]
        if default is None or stated is None:
            same = default is None and stated is None
        elif isinstance(default, tuple):
            same = [Decimal(str(v)) for v in stated] == list(default)
        elif isinstance(default, str):  # a StrEnum: compared by its value
            same = stated == default
        else:
            same = Decimal(str(stated)) == Decimal(str(default))
        wrong += [] if same else [f"{key}: README {cell}, code {default!r}"]
    assert wrong == []


def test_readme_synthetic_symbol_defaults_are_the_code_defaults() -> None:
    """The `market.symbols.SYMBOL` row gives each optional setting's default ("`daily_vol` in [0, 1], default
    0.02"): each must be `SymbolSettings`' default, and `price` (which has none) must say it is required."""
    from repeg.simulation import SymbolSettings

    row = _readme_meanings("### `[simulator]`")["market.symbols.SYMBOL"]
    documented = {name: float(value) for name, value in re.findall(r"`(\w+)`[^;`]*?default ([\d.]+)", row)}
    fields = SymbolSettings.model_fields
    assert documented == {name: field.default for name, field in fields.items() if not field.is_required()}
    assert [name for name, field in fields.items() if field.is_required()] == ["price"]
    assert "`price` required" in row


def test_every_example_doc_and_link_the_docs_name_exists() -> None:
    """`examples/demo.toml`, `docs/FILL_MODELS.md` and `[text](docs/ALPACA.md)` links: a renamed example or page
    must not leave the Quickstart or a link pointing at nothing (the path test above sees .py/.sh files only)."""
    missing = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        spans = re.findall(r"`([\w.-]+(?:/[\w.-]+)+\.(?:toml|csv|json|md))`", text)
        links = re.findall(r"\]\(([^)#\s]+)\)", text)
        # `../shared/...` is the shared data beside the checkout, not part of it
        for target in [path for path in spans if not path.startswith("../")] + [
            link for link in links if "://" not in link
        ]:
            if not ((REPO / target).exists() or (doc.parent / target).exists()):
                missing.append(f"{doc.name}: {target}")
    assert missing == []


def test_readme_usage_table_names_exactly_the_brokers_feeds_and_log_levels_run_takes() -> None:
    """`--broker NAME`, `--feed iex|sip` and `--log-level LEVEL` list their values in the Usage table: a broker,
    feed or level added to (or dropped from) the command line must show there."""
    from repeg.cli.run import BROKERS, FEEDS
    from repeg.logging import LOG_LEVELS

    rows = _readme_meanings("## Usage")
    named = {name for name in re.findall(r"`([a-z-]+)`", rows["--broker NAME"]) if not name.startswith("--")}
    assert named == set(BROKERS)
    text = (REPO / "README.md").read_text(encoding="utf-8")
    (feeds,) = re.findall(r"`--feed ([a-z|\\]+)`", text[text.index("## Usage") :].split("\n### ")[0])
    assert set(feeds.replace("\\", "").split("|")) == set(FEEDS)
    levels = re.findall(r"`([a-z]+)`", rows["--log-level LEVEL"].split("(")[0])
    assert levels == list(LOG_LEVELS)


@pytest.mark.parametrize("name", ["simulate", "execute_async"])
def test_readme_python_api_signatures_are_the_code_signatures(name: str) -> None:
    """README's Python API gives `simulate(plan, *, account=None, ...)` and `await execute_async(plan, broker, ...)`
    in full: every parameter, in order, with its default and the `*` where keywords start. A parameter added,
    renamed, reordered or given another default in `repeg.api` / `repeg.simulation` must show there."""
    import inspect

    import repeg

    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    # the signature in full is the longest of the code spans calling it (a shorter `simulate(plan)` may be an example)
    documented = max(re.findall(rf"`(?:await )?{name}\(([^)]*\([^)]*\)[^)]*|[^)]*)\)`", text), key=len)
    parts = []
    for param in inspect.signature(getattr(repeg, name)).parameters.values():
        if param.kind is param.KEYWORD_ONLY and "*" not in parts:
            parts.append("*")
        default = "" if param.default is param.empty else f"={param.default!r}"
        parts.append(param.name + default)
    assert [part.strip() for part in documented.split(", ")] == parts


def test_readme_exit_code_table_lists_exactly_the_codes_repeg_exits_with() -> None:
    """README's Exit codes table is what scripts are written against: a code added to `ExitCode` (or dropped) must
    show there, and each row's meaning must open as the code's name says (`1`: internal, `3`: partial, ...).
    `repeg.cli.exit_codes` kept its own copy of the table, which had drifted from README's (a9a41cf's parent): it
    now names each code's outcome alone, which must be these."""
    from repeg.cli import exit_codes
    from repeg.cli.exit_codes import ExitCode

    rows = _readme_meanings("## Exit codes")
    assert sorted(int(code) for code in rows) == sorted(ExitCode)
    openings = {
        ExitCode.OK: "completed",
        ExitCode.INTERNAL: "internal error",
        ExitCode.BAD_INPUT: "refused before any order",
        ExitCode.PARTIAL: "partial",
        ExitCode.FAILED: "failed",
        ExitCode.INTERRUPTED: "interrupted",
    }
    assert sorted(code.name for code in ExitCode if not rows[str(int(code))].startswith(openings[code])) == []
    # the module's docstring lists the codes by their outcome only, in order, and leaves each case to README
    summary = " ".join((exit_codes.__doc__ or "").split()).split(". ")[1]
    assert summary == ", ".join(f"{int(code)} {openings[code]}" for code in ExitCode)


def test_readme_usage_table_states_the_defaults_run_takes() -> None:
    """The Usage table gives `--broker`'s default ("`simulator` (default)") and `--journal`'s ("default
    `$REPEG_JOURNAL`, else `repeg.db`"): each must be the option's default (and environment variable) in `repeg run`."""
    rows = _readme_meanings("## Usage")
    params = {param.name: param for param in _commands()["run"].params}
    (broker_default,) = re.findall(r"`([a-z-]+)` \(default\)", rows["--broker NAME"])
    assert broker_default == params["broker"].default
    (variable, journal_default) = re.findall(r"default `\$(\w+)`, else `([^`]+)`", rows["--journal PATH"])[0]
    assert (variable, journal_default) == (params["journal"].envvar, params["journal"].default)


EXAMPLE_PLANS = sorted(
    path.name for path in (REPO / "examples").iterdir() if path.suffix in {".csv", ".json"}
)


@pytest.mark.parametrize("plan", EXAMPLE_PLANS)
def test_every_example_plan_completes_on_the_demo_account(plan: str, tmp_path: Path) -> None:
    """README: `examples/demo.toml` is the account the examples are written for (`make demo`, and "run them with
    `--config examples/demo.toml`"): each example plan must run there to `completed`, exit 0."""
    args = ["run", str(REPO / "examples" / plan), "--config", str(REPO / "examples" / "demo.toml")]
    result = CliRunner().invoke(build_app(), [*args, "--json", "--journal", str(tmp_path / "j.db")])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"


def test_the_example_trade_lists_need_the_demo_account_as_the_readme_says(tmp_path: Path) -> None:
    """README: "`examples/trades.csv` and `examples/trades.json` sell shares that only the demo account holds";
    on the default account (cash only) their sells cannot fill, so the run is partial (exit 3): the sells fail for
    want of shares, the buys fill. Any non-zero exit used to pass, a crash (exit 1) or a failed run (exit 4) too."""
    from repeg.cli.exit_codes import ExitCode

    for plan in ("trades.csv", "trades.json"):
        args = ["run", str(REPO / "examples" / plan), "--json", "--journal", str(tmp_path / f"{plan}.db")]
        result = CliRunner().invoke(build_app(), args)
        assert result.exit_code == ExitCode.PARTIAL, (plan, result.stderr)
        outcome = json.loads(result.stdout)
        assert outcome["status"] == "partial", plan
        unfilled = {(leg["side"], leg["status"]) for leg in outcome["legs"] if leg["status"] != "filled"}
        assert unfilled == {("sell", "failed")}, plan
        assert {leg["side"] for leg in outcome["legs"] if leg["status"] == "filled"} == {"buy"}, plan
