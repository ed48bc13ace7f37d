"""Split a small CNN on scikit-learn's digits and train it through a fading channel.

Run ``python examples/digits.py --help`` for the options (the same as
``aiflow-comm train digits``).
"""

import sys

from aiflow_comm.recipes.runner import main

if __name__ == "__main__":
    sys.exit(main("digits", prog="examples/digits.py"))
