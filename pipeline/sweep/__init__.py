"""A sweep: its Hydra callback (parent run, summary, winner) and the reports it writes."""
