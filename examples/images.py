"""Deep JSCC on patches of real photos against a digital baseline (quantize + LDPC + QAM).

Run ``python examples/images.py --help`` for the options (the same as
``aiflow-comm train images``).
"""

import sys

from aiflow_comm.recipes.runner import main

if __name__ == "__main__":
    sys.exit(main("images", prog="examples/images.py"))
