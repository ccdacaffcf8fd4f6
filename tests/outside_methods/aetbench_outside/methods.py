"""The method this package registers through its ``aetbench.methods`` entry point."""
from aetbench.methods import Method, Step

METHOD = Method(
    "outside-ep", "background subtraction, sharpened FBP (outside package), local-maximum tracing, k-means",
    (Step("preprocess", "aetbench.preprocess.background:subtract_background", {}),
     Step("reconstruct", "aetbench_outside.recon:sharpened_fbp", {"filter": "hann", "sharpen": 0.3}),
     Step("trace", "aetbench.trace.peaks:trace_atoms", {"method": "com", "min_distance_A": 1.9, "oversampling": 1}),
     Step("classify", "aetbench.trace.classify:classify", {"radius_A": 0.8})))
