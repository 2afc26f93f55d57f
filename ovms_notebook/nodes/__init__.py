"""Former home of the Python calculator API; `ovms_notebook.engine.python.api` keeps old imports working."""
