"""Publishing, by responsibility: finding the source (`source.py`), writing the card (`card.py`), evaluation results
in `model-index` (`model_index.py`, `record.py`), systems numbers (`systems.py`), the publish itself (`publish.py`)
and the upload (`push.py`)."""

from .model_index import weights_fingerprint
from .publish import publish
from .push import PushUnavailable, push_to_hub
from .record import record_evaluation
from .systems import measure_inference_throughput

__all__ = ["PushUnavailable", "measure_inference_throughput", "publish", "push_to_hub", "record_evaluation",
           "weights_fingerprint"]
