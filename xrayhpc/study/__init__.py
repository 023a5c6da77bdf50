"""One experiment run, from image folders to a complete result folder; knows nothing of schedulers.

device      one device per process, threads sized to the slots, the GPU found or why not, determinism
driver      what nvidia-smi says of the GPUs assigned to this process, and the driver's version
kernels     the kernel check: the job's operations on its device before training, in a child process
gpuuse      what a GPU run used, sampled through NVML beside the training
data        image folders, split, decoded-image cache
augment     the template's transforms: scipy on the CPU, one warp per image on the device (or XLA)
models      keras.applications backbones and the study's head
training    the frozen-feature and fine-tuning paths, with checkpoints (checkpoint); events: TensorBoard's files
evaluate    test metrics;  plots: curves, confusion, t-SNE;  runlog: the worker's log
regions     where a model may look (centre and border, or lung masks), and images with a part taken away
gradcam     Grad-CAM of the last convolutional layer, by TensorFlow's tape or jax.grad
probes      what a trained model looks at: the probes, Grad-CAM's share, the sentence; kept: its weights
worker      the phases in order: `python -m xrayhpc.worker`; probe: the probes of finished runs
audit, baseline   file facts and the metadata control;  synthetic: demo data;  weights: fetcher
"""
