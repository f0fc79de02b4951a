"""MLflow tracking: the store, a job folder as its run, a sweep folder as its parent run, the
jobs' models, resync, and the team tracking server."""
