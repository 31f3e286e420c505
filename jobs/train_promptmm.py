"""Train PromptMM: the multimodal teacher (stage 1), then the distilled ID-only student (stage 2).

    python jobs/train_promptmm.py [--config conf/promptmm.yaml] [dotted.key=value ...]
    ray job submit --working-dir . -- python jobs/train_promptmm.py --config conf/promptmm.yaml

``method.promptmm.teacher.checkpoint=<path or URI>`` starts at stage 2 from a saved teacher. This is
``jobs/train.py`` with the method fixed to PromptMM and ``conf/promptmm.yaml`` as the default config.
"""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
if "-h" not in args and "--help" not in args and not any(a == "--config" or a.startswith("--config=") for a in args):
    args = ["--config", os.path.join(HERE, "..", "conf", "promptmm.yaml"), *args]
sys.argv = [os.path.join(HERE, "train.py"), "--method", "promptmm", *args]
runpy.run_path(sys.argv[0], run_name="__main__")
