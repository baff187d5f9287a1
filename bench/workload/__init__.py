"""The workload layer: the datasets (``datasets/``: chosen by name, each with its sizes, shape,
classes, loader and checksums), the model and loss specs with their float64 references, the
run configuration, the data order and early stopping. Framework-free: the implementations
build on it, and nothing here imports an implementation or a framework."""
