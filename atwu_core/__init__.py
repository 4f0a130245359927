"""ATWU Lab: token-level LLM unlearning.

Runs ATWU (Alternating Token-Weighted Unlearning) and baseline unlearning methods on a small
language model, evaluates them with the TOFU protocol, and measures how well per-token weights
match ground-truth forget spans. This module imports nothing heavy: the dashboard must start
without torch.
"""

__version__ = "0.1.0"
