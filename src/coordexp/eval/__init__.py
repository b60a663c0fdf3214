"""coordexp.eval: detection metrics of an inference artifact (see docs/inference-and-evaluation.md).

python -m coordexp.eval <config.yaml>            # scripts/eval.sh <config.yaml>
python -m coordexp.eval --artifact A --out DIR   # without a config
from coordexp.eval import evaluate_rows          # the library function (in-training evaluation)
python -m coordexp.eval.vis <config.yaml>        # overlay pictures of the artifact (module ``vis``)
"""

from coordexp.eval.detection import evaluate_artifact, evaluate_rows

__all__ = ["evaluate_artifact", "evaluate_rows"]
