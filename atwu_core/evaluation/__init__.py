"""Evaluation: the TOFU protocol (`evaluate`), its arithmetic (`metrics`), which models a run is
measured against and how their evaluations are cached (`protocol`), and RWKU's probes (`rwku`,
`rwku_metrics`). Nothing is imported here, so `atwu_core.evaluation.metrics` stays light."""
