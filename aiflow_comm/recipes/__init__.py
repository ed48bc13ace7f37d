"""Training recipes on built-in data: ``aiflow-comm train RECIPE`` and ``examples/RECIPE.py``.

Each recipe module offers ``add_arguments(parser)``, ``run(args) -> dict`` (a result with
``recipe``, ``options`` and ``results``: one row per setting and SNR), ``format_table(result)``
and ``plot(result, path)``; :func:`aiflow_comm.recipes.runner.main` wires them to a command line.
"""

RECIPES = ("gaussian", "images", "digits")

__all__ = ["RECIPES"]
