"""Publishing: a Hub-layout folder with a model card (`publish`), evaluations on the card (`record_evaluation`),
systems numbers measured by the zoo (`systems`), and the upload (`push_to_hub`)."""

from .card import record_evaluation
from .publish import PushUnavailable, publish, push_to_hub
from .systems import measure_inference_throughput

__all__ = ["PushUnavailable", "measure_inference_throughput", "publish", "push_to_hub", "record_evaluation"]
