"""Learn JSCC of i.i.d. Gaussian vectors over AWGN or Rayleigh fading and compare with OPTA.

Run ``python examples/gaussian.py --help`` for the options (the same as
``aiflow-comm train gaussian``). ``--ratio R`` counts real channel dimensions per source value.
"""

import sys

from aiflow_comm.recipes.runner import main

if __name__ == "__main__":
    sys.exit(main("gaussian", prog="examples/gaussian.py"))
