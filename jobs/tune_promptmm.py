"""Sweep PromptMM settings: ``jobs/tune.py`` under its earlier name (kept for existing commands).

    python jobs/tune_promptmm.py --config conf/tune/promptmm_synthetic.yaml [sweep.key=value ...]
"""

import os
import runpy
import sys

sys.argv[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tune.py")
runpy.run_path(sys.argv[0], run_name="__main__")
