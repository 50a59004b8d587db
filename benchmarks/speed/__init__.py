"""The parts of `benchmarks/backend_speed.py` (the entry point and command line):

- `configs`: the model sizes timed (full and `--quick`), batches, references, analytic FLOPs;
- `timing`: timing a call, a matmul's GFLOP/s, a process's peak RSS;
- `runner`: `Runner`, what every kind of row implements, and `Mode`, a kind of timed step;
- `keras_models`: keras-har's models under the worker's Keras backend (`KerasImpl`);
- `torch_references`: transformers' VideoMAE and timm's ViT in PyTorch (`TorchReference`);
- `exported_runtimes`: keras-har's VideoMAE exported and run by ONNX Runtime, OpenVINO,
  TensorFlow (SavedModel) and LiteRT, with the accuracy cost of bf16 / int8 (`ExportedRuntime`);
- `registry`: the kinds of rows and modes a run knows (where a new kind is added);
- `jobs`: which jobs a run has and how a worker process times one;
- `workers`: the subprocesses (environment, tcmalloc, collecting their rows);
- `report`: ratios, pooled matmul peaks, targets, the markdown table.
"""
