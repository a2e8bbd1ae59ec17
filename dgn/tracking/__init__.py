"""The one place that talks to MLflow (README "Results in MLflow"): only drivers import it.

``core`` opens (or continues) runs, resolves the tracking URI and scrubs
secrets; the other modules here log what their stage produces.
"""

from dgn.tracking.core import (
    Run,
    browse_hint,
    check_reachable,
    dgn_home,
    experiment_id,
    flatten,
    open_run,
    scrub,
    tracking_uri,
)

__all__ = ["Run", "browse_hint", "check_reachable", "dgn_home", "experiment_id", "flatten", "open_run", "scrub",
           "tracking_uri"]
