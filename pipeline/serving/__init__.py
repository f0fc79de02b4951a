"""The chosen model as an MLflow pyfunc model: logged, registered, served by `mlflow models serve`."""
